"""``per-frame``: the feature and task networks on every frame (the reference every other
scheme is measured against)."""

from __future__ import annotations

from collections.abc import Iterator

from bmvseg.schemes.base import FrameResult, Marked, RunContext, Traits


class PerFrame:
    name = "per-frame"
    traits = Traits(uses_interval=False, fuses=False, needs_pictures=True, needs_motion=False,
                    delays_output=False)  # fmt: skip

    def __init__(self, run: RunContext) -> None:
        self.run = run

    def results(self, marked: Marked) -> Iterator[FrameResult]:
        for fr, mark in marked:
            yield self.run.keyframe(fr, mark)[1]
