"""``inter-flow``: Deep Feature Flow's dense optical flow used the inter-BMV way.

Each frame between two keyframes gets the previous keyframe's features warped forward and the
next keyframe's warped backward, each in one step along the DIS flow from the frame's image to
that keyframe's image, fused as inter-BMV fuses and never across a cut
(:mod:`bmvseg.schemes.interval`).  Beside inter-BMV it answers whether interpolation or the
motion source buys the accuracy: the same walk, the motion of pixels instead of the codec's.
"""

from __future__ import annotations

import numpy as np

from bmvseg.models.base import Features
from bmvseg.schemes.base import RunContext, Traits
from bmvseg.schemes.interval import Interpolating
from bmvseg.schemes.optical_flow import DenseFlow, gray
from bmvseg.video.frame import Frame


class InterFlow(Interpolating):
    name = "inter-flow"
    traits = Traits(uses_interval=True, fuses=True, needs_pictures=True, needs_motion=False,
                    delays_output=True)  # fmt: skip

    def __init__(self, run: RunContext) -> None:
        super().__init__(run)
        self.flow = DenseFlow(run.config.flow_preset, run.model.strides, run.timer)
        self.key_gray: tuple[int, np.ndarray] | None = None  # the opening keyframe's, reused

    def carrier(self, key: Frame, nxt: Frame, forward: list[Frame], backward: list[Frame]
                ) -> _FlowCarrier:  # fmt: skip
        with self.run.timer("flow"):
            grays = {key.index: self._gray(key), nxt.index: gray(nxt)}
            cur = {fr.index: gray(fr) for fr in [*forward, *backward]}
        self.key_gray = (nxt.index, grays[nxt.index])
        pairs = [(key.index, fr.index) for fr in forward]
        pairs += [(nxt.index, fr.index) for fr in backward]
        flows = {(o, t): self.flow.pull(cur[t], grays[o]) for o, t in pairs}
        return _FlowCarrier(self.flow, flows)

    def _gray(self, key: Frame) -> np.ndarray:
        if self.key_gray is not None and self.key_gray[0] == key.index:
            return self.key_gray[1]
        return gray(key)


class _FlowCarrier:
    """Keyframe features warped onto a frame along its precomputed flow to that keyframe."""

    def __init__(self, flow: DenseFlow, flows: dict[tuple[int, int], np.ndarray]) -> None:
        self.flow, self.flows = flow, flows

    def carry(self, origin: int, feats: Features, target: int) -> Features:
        return self.flow.warp(feats, self.flows[origin, target])
