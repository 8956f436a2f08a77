"""Segmenting one chunk of a video: the work a Ray actor does, written without Ray.

:class:`ChunkSegmenter` builds the model and engine once (the actor's lifetime) from
:class:`~bmvseg.run.options.RunOptions`, exactly as a single-process run builds them, and
segments chunks on request.  Everything it returns travels back to the driver by value (label
PNGs, the overlay piece as encoded MP4 bytes, stats), so workers need read access to the inputs
and nothing else: no shared filesystem.  The job wraps the class with ``ray.remote`` (see
``bmvseg.distributed.job``); in-process it is used as it is, which is what the tests compare.
"""

from __future__ import annotations

import io
import os
import platform
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from bmvseg.data.classes import overlay_frame
from bmvseg.distributed.chunks import Chunk
from bmvseg.errors import BmvsegError
from bmvseg.run.build import build_engine
from bmvseg.run.options import RunOptions
from bmvseg.run.stream import collected_every, open_video
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.encode import OVERLAY_OPTIONS, VideoWriter
from bmvseg.video.frame import Frame


@dataclass
class ChunkResult:
    """One chunk's output: PNG bytes of frames ``first, first+1, ...`` and its overlay piece."""

    chunk: Chunk
    first: int
    labels: list[bytes]
    overlay: bytes | None  # an MP4 of the chunk's overlay frames, None without frames or overlay
    stats: dict = field(default_factory=dict)


def png(labels: np.ndarray) -> bytes:
    """The label file's bytes, encoded as ``bmvseg segment`` writes them (RunDir.write_labels)."""
    ok, data = cv2.imencode(".png", labels)
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


class ChunkSegmenter:
    """A worker: the engine built once, then any number of chunks of any videos.

    A user error while building (a bad checkpoint) is kept and raised by :meth:`info`, so the
    driver reports it as one line instead of an actor that failed to start.
    """

    def __init__(self, options: RunOptions, threads: int | None = None) -> None:
        t0 = time.perf_counter()
        self.options = options
        if threads is not None:  # workers sharing a machine split its cores
            torch.set_num_threads(threads)
        self.error: BmvsegError | None = None
        try:
            self.engine = build_engine(self.options)
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
            "device": str(self.options.device),
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
        keyframes: list[dict] = []
        first_s: float | None = None
        first_time: float | None = None
        buf = io.BytesIO()
        writer: VideoWriter | None = None
        with open_video(video, self.options) as reader, collected_every() as tick:
            frames = reader.frames(start=chunk.start)

            def timed_first(it: Iterator[Frame]) -> Iterator[Frame]:
                nonlocal first_s
                for fr in it:
                    if first_s is None:  # open + reaching the chunk's start (seek or decode)
                        first_s = time.perf_counter() - t0
                    yield fr

            for res in self.engine.run(timed_first(frames), start=chunk.start, end=chunk.end):
                if res.index != chunk.start + len(labels):
                    raise RuntimeError(f"frame {res.index} out of order in chunk {chunk.key}")
                if first_time is None:
                    first_time = res.time
                labels.append(png(res.labels))
                if res.keyframe:
                    keyframes.append({"index": res.index, "reason": res.reason})
                if overlay:
                    if writer is None:
                        writer = VideoWriter(buf, fps=reader.fps, options=OVERLAY_OPTIONS,
                                             container_format="mp4")  # fmt: skip
                    writer.write(overlay_frame(res.image, res.labels, palette, res.keyframe),
                                 time=res.time)
                tick()
            frames.close()
            if writer is not None:
                writer.close()
            stats = {
                "start": chunk.start,
                "end": chunk.end,
                "frames": len(labels),
                "first_time": first_time,
                "wall_s": round(time.perf_counter() - t0, 3),
                "seek_s": None if first_s is None else round(first_s, 3),
                "decoded": getattr(reader, "decoded", None),  # frames decoded, seeking included
                "keyframes": keyframes,
                "stream_ended_early": reader.truncated,
                "damaged_frames": list(getattr(reader, "damaged_frames", [])),
                "concealed_frames": list(getattr(reader, "concealed_frames", [])),
                "motion_source": reader.motion_source,
                "motion_reason": reader.motion_reason,
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
