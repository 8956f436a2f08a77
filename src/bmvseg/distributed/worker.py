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

import torch

from bmvseg.distributed.chunks import Chunk
from bmvseg.errors import BmvsegError
from bmvseg.output.frames import FrameLog, OverlayEncoder, check_storable, label_png
from bmvseg.run.build import build_engine
from bmvseg.run.iterate import collected_every, open_video
from bmvseg.run.options import RunOptions
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.frame import Frame


@dataclass
class ChunkResult:
    """One chunk's output: PNG bytes of frames ``first, first+1, ...`` and its overlay piece."""

    chunk: Chunk
    first: int
    labels: list[bytes]
    overlay: bytes | None  # an MP4 of the chunk's overlay frames, None without frames or overlay
    stats: dict = field(default_factory=dict)  # FrameLog.facts and the chunk's own


class ChunkSegmenter:
    """A worker: the engine built once, then any number of chunks of any videos.

    A user error while building (a bad checkpoint, a model whose labels cannot be stored) is
    kept and raised by :meth:`info`, so the driver reports it as one line, before any output
    folder is claimed, instead of an actor that failed to start.
    """

    def __init__(self, options: RunOptions, threads: int | None = None) -> None:
        t0 = time.perf_counter()
        self.options = options
        if threads is not None:  # workers sharing a machine split its cores
            torch.set_num_threads(threads)
        self.error: BmvsegError | None = None
        try:
            self.engine = build_engine(self.options)
            check_storable(self.engine.model.num_classes, f"model {options.model}")
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
        labels: list[bytes] = []
        log = FrameLog(self.engine.model)
        first_s: float | None = None
        buf = io.BytesIO()
        encoder: OverlayEncoder | None = None
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
                labels.append(label_png(res.labels))
                log.add(res)
                if overlay:
                    if encoder is None:
                        encoder = OverlayEncoder(buf, reader.fps, log.classes)
                    encoder.add(res)
                tick()
            frames.close()
            if encoder is not None:
                encoder.close()
            stats = {
                "start": chunk.start,
                "end": chunk.end,
                **log.facts(reader, timer.mean_ms(), time.perf_counter() - t0),
                "seek_s": None if first_s is None else round(first_s, 3),
                "decoded": getattr(reader, "decoded", None),  # frames decoded, seeking included
                "label_bytes": [len(b) for b in labels],
                "overlay_bytes": len(buf.getvalue()) if encoder else None,
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
        return ChunkResult(chunk, chunk.start, labels, buf.getvalue() if encoder else None, stats)
