"""Throughput as the user gets it: ``bmvseg segment``'s own run, outputs written, per scheme.

Every configuration runs :func:`bmvseg.run.segment_to_dir` (decode, engine, label PNGs and
overlay written) over the same video in one process, into a temporary directory, so speed is
reported as a ratio to the per-frame run measured beside it (machines are shared and noisy).
Per-frame is measured first and last; the mean is the baseline, and the two passes disagreeing
by more than :data:`BASELINE_TOLERANCE` flags the rows as unreliable (:func:`baseline_warning`,
which the benchmark and the demo print, write in their reports and draw on their plots).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from bmvseg import progress
from bmvseg.evaluation.sweep import Variant
from bmvseg.models.base import SegmentationModel
from bmvseg.run.options import RunOptions
from bmvseg.run.to_dir import segment_to_dir
from bmvseg.schemes.registry import reference_scheme

BASELINE_TOLERANCE = 0.10  # relative spread of the two per-frame passes above which we warn


@dataclass
class Throughput:
    """One timed ``segment`` run: frames, wall seconds, stage means, keyframes."""
    variant: Variant
    interval: int
    frames: int
    seconds: float
    stage_ms: dict[str, float]
    keyframes: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def measure(model: SegmentationModel, video, v: Variant, n: int, options: RunOptions, *,
            overlay: bool = True, end: int | None = None) -> Throughput:  # fmt: skip
    """One ``segment`` run of ``v`` at interval ``n`` with ``model``, into a scratch directory."""
    opts = options.replace(model=model, **v.engine_options(), interval=n, phase=0)
    with tempfile.TemporaryDirectory(prefix="bmvseg-speed-") as tmp:
        s = segment_to_dir(video, Path(tmp) / "out", opts, overlay=overlay, end=end)
    return Throughput(v, n, s["frames"], s["wall_time_s"], s["stage_ms_per_frame"],
                      len(s["keyframes"]))  # fmt: skip


def sweep(model: SegmentationModel, video, variants: Sequence[Variant], intervals: Sequence[int],
          options: RunOptions, *, overlay: bool = True, end: int | None = None
          ) -> tuple[list[Throughput], list[Throughput]]:  # fmt: skip
    """(per-frame baselines [first, last], every other configuration); frames [0, end)."""
    base = Variant(reference_scheme())
    kw = {"options": options, "overlay": overlay, "end": end}
    todo = [(v, n) for v in variants if v.traits.uses_interval for n in intervals]
    with torch.inference_mode(), progress.bar(total=len(todo) + 3, desc="timing runs",
                                              unit="run") as bar:  # fmt: skip
        measure(model, video, base, 1, **kw)  # warm-up: allocator, oneDNN primitives, caches
        bar.update()
        first = measure(model, video, base, 1, **kw)
        bar.update()
        runs = []
        for v, n in todo:
            runs.append(measure(model, video, v, n, **kw))
            bar.update()
        last = measure(model, video, base, 1, **kw)
        bar.update()
    return [first, last], runs


def baseline_spread(base: Sequence[Throughput]) -> float:
    """Relative disagreement of the per-frame passes: |a - b| / mean (0 with one pass)."""
    fps = [b.fps for b in base]
    return abs(max(fps) - min(fps)) / (sum(fps) / len(fps)) if len(fps) > 1 else 0.0


def baseline_warning(base: Sequence[Throughput]) -> str | None:
    """The warning for speed figures taken while the machine was busy, or None.

    The two per-frame passes run the same work at the start and the end of the timing runs:
    when they disagree by more than :data:`BASELINE_TOLERANCE`, the machine's load changed
    meanwhile and every speed figure between them is as uncertain.
    """
    spread = baseline_spread(base)
    if spread <= BASELINE_TOLERANCE:
        return None
    first, last = base[0].fps, base[-1].fps
    return (
        f"speed figures unreliable: the two per-frame passes differ by {100 * spread:.0f}% "
        f"({first:.1f} fps first, {last:.1f} fps last; over {100 * BASELINE_TOLERANCE:.0f}% "
        "means a busy machine); rerun on a quiet one"
    )
