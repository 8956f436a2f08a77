"""``prop-bmv`` (paper Alg. 1): the keyframe's features carried forward frame by frame along
each frame's block motion (:class:`~bmvseg.schemes.base.MotionChains`)."""

from __future__ import annotations

from collections.abc import Iterator

from bmvseg.models.base import Features
from bmvseg.schemes.base import FrameResult, Marked, MotionChains, RunContext, Traits


class PropBmv:
    name = "prop-bmv"
    traits = Traits(uses_interval=True, fuses=False, needs_pictures=False, needs_motion=True,
                    delays_output=False)  # fmt: skip

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.chains = MotionChains(run)
        self.key: tuple[int, Features] | None = None

    def results(self, marked: Marked) -> Iterator[FrameResult]:
        run = self.run
        for fr, mark in marked:
            self.chains.keep(fr, mark.keyframe)
            if mark.keyframe or self.key is None:
                feats, res = run.keyframe(fr, mark)
                self.key = (fr.index, feats)
                yield res
                continue
            feats = None
            if run.want(fr.index):
                with run.timer("warp"):
                    feats = self.chains.carry(self.key[0], self.key[1], fr.index)
            yield run.result(fr, feats, fr.index - self.key[0], mark)
