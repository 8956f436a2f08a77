"""``prop-flow`` (Deep Feature Flow): keyframe features warped once to each later frame by dense
optical flow (OpenCV DIS) from the current image to the keyframe image."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from bmvseg.models.base import Features
from bmvseg.schemes.base import FrameResult, Marked, RunContext, Traits
from bmvseg.schemes.optical_flow import DenseFlow, gray
from bmvseg.video.frame import Frame


class PropFlow:
    name = "prop-flow"
    traits = Traits(uses_interval=True, fuses=False, needs_pictures=True, needs_motion=False,
                    delays_output=False)  # fmt: skip

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.flow = DenseFlow(run.config.flow_preset, run.model.strides, run.timer)
        self.key: tuple[Frame, Features, np.ndarray] | None = None

    def results(self, marked: Marked) -> Iterator[FrameResult]:
        run = self.run
        for fr, mark in marked:
            if mark.keyframe or self.key is None:
                feats, res = run.keyframe(fr, mark)
                self.key = (fr, feats, gray(fr))
                yield res
                continue
            feats = None
            key_frame, key_feats, key_gray = self.key
            if run.want(fr.index):
                with run.timer("flow"):
                    cur = gray(fr)
                flow = self.flow.pull(cur, key_gray)
                with run.timer("warp"):
                    feats = self.flow.warp(key_feats, flow)
            yield run.result(fr, feats, fr.index - key_frame.index, mark)
