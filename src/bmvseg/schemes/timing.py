"""Per-stage timing, aggregated so memory stays flat however long the video is."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

STAGES = ("decode", "feature", "flow", "warp", "fusion", "task", "argmax", "write")


class StageTimer:
    """Sums wall time per stage; per-frame records are kept only when ``keep_frames`` is set."""

    def __init__(self, keep_frames: bool = False) -> None:
        self.total: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.calls: dict[str, int] = dict.fromkeys(STAGES, 0)
        self.frames = 0
        self.keep_frames = keep_frames
        self.per_frame: list[dict[str, float]] = []
        self._current: dict[str, float] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            self.total[stage] = self.total.get(stage, 0.0) + dt
            self.calls[stage] = self.calls.get(stage, 0) + 1
            if self.keep_frames:
                self._current[stage] = self._current.get(stage, 0.0) + dt

    def frame_done(self) -> None:
        self.frames += 1
        if self.keep_frames:
            self.per_frame.append(self._current)
            self._current = {}

    def mean_ms(self) -> dict[str, float]:
        """Mean milliseconds per output frame for each stage (amortised over all frames)."""
        n = max(self.frames, 1)
        return {k: 1000.0 * v / n for k, v in self.total.items()}
