"""``inter-bmv`` (paper Alg. 2): features carried along block motion forward from the previous
keyframe and backward from the next, fused (:mod:`bmvseg.schemes.interval`).  Memory holds one
interval of frames, two keyframes' features and one warped map per chain."""

from __future__ import annotations

from bmvseg.schemes.base import MotionChains, RunContext, Traits
from bmvseg.schemes.interval import Carries, Interpolating
from bmvseg.video.frame import Frame


class InterBmv(Interpolating):
    name = "inter-bmv"
    traits = Traits(uses_interval=True, fuses=True, needs_pictures=False, needs_motion=True,
                    delays_output=True)  # fmt: skip

    def __init__(self, run: RunContext) -> None:
        super().__init__(run)
        self.chains = MotionChains(run)

    def hold(self, frame: Frame) -> None:
        self.chains.keep(frame, False)

    def closed(self, keyframe: Frame) -> None:
        self.chains.keep(keyframe, True)

    def carrier(self, key: Frame, nxt: Frame, forward: list[Frame], backward: list[Frame]
                ) -> Carries:  # fmt: skip
        return self.chains.carrier
