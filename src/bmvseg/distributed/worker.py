"""Segmenting one chunk of a video: the work a Ray actor does, written without Ray.

:class:`ChunkSegmenter` builds the model and engine once (the actor's lifetime) and segments
chunks on request.  Everything it returns travels back to the driver by value (label PNGs, the
overlay piece as encoded MP4 bytes, stats), so workers need read access to the inputs and
nothing else: no shared filesystem.  The job wraps the class with ``ray.remote`` (see
``bmvseg.distributed.job``); in-process it is used as it is, which is what the tests compare.
"""

from __future__ import annotations

import gc
import io
import os
import platform
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from bmvseg.data.classes import blend
from bmvseg.distributed.chunks import Chunk
from bmvseg.errors import BmvsegError
from bmvseg.schemes.engine import EngineConfig
from bmvseg.schemes.segment import DEFAULT_MODEL, build_engine
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.encode import VideoWriter
from bmvseg.video.reader import Frame, VideoReader

COLLECT_EVERY = 16  # frames between garbage collections (see bmvseg.video.reader on cycles)
OVERLAY_OPTIONS = {"crf": "23", "preset": "veryfast"}  # as ``bmvseg segment``'s overlay.mp4


@dataclass(frozen=True)
class EngineSpec:
    """Everything a worker needs to build the engine: plain values, so it pickles anywhere."""

    model: str = DEFAULT_MODEL
    weights: str | None = "default"
    split: str | None = None
    device: str = "cpu"
    fusion_weights: str | None = None
    motion: str = "auto"
    scheme: str = "inter-bmv"
    interval: int = 5
    fusion: str = "avg"
    accumulate: bool = False
    flow_preset: str = "fast"
    label_stride: int = 1

    def config(self) -> EngineConfig:
        return EngineConfig(
            scheme=self.scheme,
            interval=self.interval,
            fusion=self.fusion,
            accumulate=self.accumulate,
            flow_preset=self.flow_preset,
            label_stride=self.label_stride,
        )

    def identity(self, video: Path) -> dict:
        """What ``run.json`` records: the keys ``bmvseg segment`` uses, so outputs compare."""
        return {
            "video": str(video.resolve()),
            "video_bytes": video.stat().st_size,
            "model": self.model,
            "weights": self.weights,
            "split": self.split,
            "scheme": self.scheme,
            "interval": self.interval,
            "fusion": self.fusion,
            "accumulate": self.accumulate,
            "flow_preset": self.flow_preset,
            "label_stride": self.label_stride,
            "motion": self.motion,
        }


@dataclass
class ChunkResult:
    """One chunk's output: PNG bytes of frames ``first, first+1, ...`` and its overlay piece."""

    chunk: Chunk
    first: int
    labels: list[bytes]
    overlay: bytes | None  # an MP4 of the chunk's overlay frames, None without frames or overlay
    stats: dict = field(default_factory=dict)


def png(labels: np.ndarray) -> bytes:
    """The label file's bytes, encoded exactly as ``bmvseg segment`` writes them."""
    ok, data = cv2.imencode(".png", labels)
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def even(rgb: np.ndarray) -> np.ndarray:
    """Odd sizes padded by one edge row/column (yuv420p H.264 needs even ones), as segment does."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h | w) % 2 else rgb


class ChunkSegmenter:
    """A worker: the engine built once, then any number of chunks of any videos.

    A user error while building (a bad checkpoint) is kept and raised by :meth:`info`, so the
    driver reports it as one line instead of an actor that failed to start.
    """

    def __init__(self, spec: EngineSpec, threads: int | None = None) -> None:
        t0 = time.perf_counter()
        self.spec = spec
        if threads is not None:  # workers sharing a machine split its cores
            torch.set_num_threads(threads)
        self.error: BmvsegError | None = None
        try:
            self.engine = build_engine(spec.model, spec.config(), weights=spec.weights,
                                       device=spec.device, split=spec.split,
                                       fusion_weights=spec.fusion_weights)  # fmt: skip
        except BmvsegError as exc:
            self.error = exc
        self.load_s = time.perf_counter() - t0
        self.chunks_done = 0

    def info(self) -> dict:
        """Who this worker is; raises the build error, if any."""
        if self.error is not None:
            raise self.error
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "load_s": round(self.load_s, 3),
            "threads": torch.get_num_threads(),
            "device": self.spec.device,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }

    def pid(self) -> int:
        return os.getpid()

    def run_chunk(self, video: str, chunk: Chunk, overlay: bool = True) -> ChunkResult:
        """Segment frames [chunk.start, chunk.end) of ``video``; the engine reads on as needed."""
        if self.error is not None:
            raise self.error
        t0 = time.perf_counter()
        timer = StageTimer()
        self.engine.timer = timer
        palette = self.engine.model.palette
        labels: list[bytes] = []
        first_s: float | None = None
        buf = io.BytesIO()
        writer: VideoWriter | None = None
        with VideoReader(video, motion=self.spec.motion) as reader:
            frames = reader.frames(images=True, start=chunk.start)

            def timed_first(it: Iterator[Frame]) -> Iterator[Frame]:
                nonlocal first_s
                for fr in it:
                    if first_s is None:  # open + reaching the chunk's start (decode or seek)
                        first_s = time.perf_counter() - t0
                    yield fr

            for res in self.engine.run(timed_first(frames), start=chunk.start, end=chunk.end):
                if res.index != chunk.start + len(labels):
                    raise RuntimeError(f"frame {res.index} out of order in chunk {chunk.key}")
                labels.append(png(res.labels))
                if overlay:
                    if writer is None:
                        writer = VideoWriter(buf, fps=reader.fps, options=OVERLAY_OPTIONS,
                                             container_format="mp4")  # fmt: skip
                    writer.write(even(blend(res.image, res.labels, palette)))
                if len(labels) % COLLECT_EVERY == 0:
                    gc.collect()
            frames.close()
            if writer is not None:
                writer.close()
            stats = {
                "start": chunk.start,
                "end": chunk.end,
                "frames": len(labels),
                "wall_s": round(time.perf_counter() - t0, 3),
                "seek_s": None if first_s is None else round(first_s, 3),
                "stream_ended_early": reader.truncated,
                "motion_source": reader.motion_source,
                "motion_reason": reader.motion_reason,
                "notice": reader.notice,
                "width": reader.width,
                "height": reader.height,
                "fps": reader.fps,
                "stage_ms_per_frame": {k: round(v, 3) for k, v in timer.mean_ms().items()},
                "worker": {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "load_s": round(self.load_s, 3),
                    "chunk_number": self.chunks_done,
                    "threads": torch.get_num_threads(),
                },
                "machine": platform.platform(),
                "torch": torch.__version__,
            }
        self.chunks_done += 1
        return ChunkResult(chunk, chunk.start, labels, buf.getvalue() if writer else None, stats)
