"""``bmvseg.segment``: results one frame at a time, in the caller's own process."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from bmvseg.errors import BmvsegError
from bmvseg.models.base import SegmentationModel
from bmvseg.output.frames import check_storable
from bmvseg.run.build import build_engine
from bmvseg.run.options import DEFAULT_MODEL, RunOptions
from bmvseg.schemes.engine import FrameResult
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.reader import VideoReader

COLLECT_EVERY = 16  # frames between garbage collections (decoded frames held at most)


@contextmanager
def collected_every(frames: int = COLLECT_EVERY):
    """Keep a long run's memory flat: yields a ``tick()`` to call once per frame.

    Decoded frames whose motion vectors were read are reference cycles (see
    :mod:`bmvseg.video.reader`), freed only by the cyclic collector, which rarely runs a full
    pass in a process holding torch.  Freezing what exists now keeps each collection to the
    run's own young objects; the freeze is undone when the run ends, whatever ends it.
    """
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count % frames == 0:
            gc.collect()

    gc.freeze()
    try:
        yield tick
    finally:
        gc.unfreeze()


def open_video(
    video: str | os.PathLike | BinaryIO,
    options: RunOptions,
    *,
    live: bool | None = None,
    timeout: float | None = None,
    format: str | None = None,
) -> VideoReader:
    """The reader for a run: the options' motion policy and stream; ``live``, ``timeout`` and
    ``format`` as :class:`~bmvseg.video.reader.VideoReader` takes them (``-`` and URLs are
    live streams by themselves)."""
    if isinstance(video, (bytes, bytearray)):
        raise BmvsegError("video must be a path (str or os.PathLike) or a binary file object")
    kwargs = {} if options.stream is None else {"stream": options.stream}
    return VideoReader(video, motion=options.motion, live=live, timeout=timeout, format=format,
                       **kwargs)  # fmt: skip


def check_live_keywords(live: object, timeout: object, format: object) -> None:
    """Refuse a live-input keyword of the wrong type by name (before anything is opened)."""
    if live is not None and not isinstance(live, bool):
        raise BmvsegError(f"live must be True, False or None, got {live!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0):  # fmt: skip
        raise BmvsegError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
    if format is not None and not isinstance(format, str):
        raise BmvsegError(f"format must be a demuxer name (a string) or None, got {format!r}")


def segment(
    video: str | os.PathLike | BinaryIO,
    *,
    model: str | SegmentationModel = DEFAULT_MODEL,
    start: int = 0,
    end: int | None = None,
    keep_logits: bool = False,
    keep_features: bool = False,
    timer: StageTimer | None = None,
    live: bool | None = None,
    timeout: float | None = None,
    format: str | None = None,
    **options,
) -> Iterator[FrameResult]:
    """Segment ``video``, yielding one :class:`FrameResult` per frame in presentation order.

    ``video`` may be a stream that arrives: ``"-"`` (standard input), a URL FFmpeg opens
    (``"tcp://..."``, ``"rtsp://..."``, ...), or with ``live=True`` a non-seekable file object
    (a pipe, a socket's file) or a device (with ``format``, e.g. ``"v4l2"``).  It is read once,
    in order, and each result is yielded as soon as it is decided (inter-BMV: when the keyframe
    closing its interval has arrived); ``timeout`` bounds each wait for the stream (seconds).

    ``options`` are :class:`~bmvseg.run.options.RunOptions`' fields (the CLI's options: weights,
    split, device, motion, stream, scheme, interval, phase, fusion, fusion_weights, keyframes,
    max_interval, accumulate, flow_preset, label_stride).  ``model`` is a registered name,
    ``path/to/model.py:build``, or a model object.  Memory stays flat over hours of video with
    nothing asked of the caller (see :func:`collected_every`).
    """
    opts = RunOptions(model=model, **options)
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise BmvsegError(f"{name} must be a frame index >= 0, got {value!r}")
    engine = build_engine(opts, timer=timer, keep_logits=keep_logits, keep_features=keep_features)
    check_storable(engine.model.num_classes)  # labels are uint8 class ids
    live_options = {"live": live, "timeout": timeout, "format": format}
    check_live_keywords(**live_options)
    with open_video(video, opts, **live_options) as reader, collected_every() as tick:
        for res in engine.run(reader.frames(start=start), start=start, end=end):
            yield res
            tick()
