"""Throughput of the full streaming pipeline (decode included) per scheme and interval.

Every configuration runs the same :class:`bmvseg.schemes.engine.Engine` over the same encoded
video in one process, so speed is reported as a ratio to the per-frame run measured beside it
(the machines are shared and noisy).  Per-frame is measured first and last; the mean is the
baseline and the spread is reported.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from bmvseg.evaluation.sweep import Variant
from bmvseg.models.base import SegmentationModel
from bmvseg.schemes.engine import Engine, EngineConfig
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.reader import VideoReader


@dataclass
class Throughput:
    variant: Variant
    interval: int
    frames: int
    seconds: float
    stage_ms: dict[str, float]

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def measure(model: SegmentationModel, video, v: Variant, n: int, *, conv: ConvFusion | None,
            flow_preset: str, accumulate: bool, max_frames: int | None,
            label_stride: int = 1) -> Throughput:  # fmt: skip
    """One timed pass of the engine over ``video`` (labels computed and dropped)."""
    cfg = EngineConfig(scheme=v.scheme, interval=n, fusion=v.fusion or "avg",
                       accumulate=accumulate, flow_preset=flow_preset,
                       label_stride=label_stride)  # fmt: skip
    timer = StageTimer()
    engine = Engine(model, cfg, conv, timer)
    t0 = time.perf_counter()
    frames = 0
    with VideoReader(video) as reader:
        for _ in engine.run(reader.frames(images=True, end=max_frames)):
            frames += 1
    return Throughput(v, n, frames, time.perf_counter() - t0, timer.mean_ms())


def sweep(model: SegmentationModel, video, variants: Sequence[Variant], intervals: Sequence[int],
          **kw) -> tuple[list[Throughput], list[Throughput]]:  # fmt: skip
    """(per-frame baselines [first, last], every other configuration)."""
    base = Variant("per-frame")
    with torch.inference_mode():
        measure(model, video, base, 1, **kw)  # warm-up: allocator, oneDNN primitives, caches
        first = measure(model, video, base, 1, **kw)
        runs = [
            measure(model, video, v, n, **kw)
            for v in variants
            if v.scheme != "per-frame"
            for n in intervals
        ]
        last = measure(model, video, base, 1, **kw)
    return [first, last], runs
