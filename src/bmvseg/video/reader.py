"""Reading a compressed video as frames with their block motion relative to the previous frame.

:class:`VideoReader` joins three parts: a container source (:mod:`bmvseg.video.source`: open,
probe, stream choice, frame rate, truncation; a seekable file (:mod:`bmvseg.video.file_source`)
seeks, a live stream (:mod:`bmvseg.video.live_source`) is read once, in order), a
motion source (:mod:`bmvseg.video.motion_source`: the stream's own vectors, the re-encoder, or
the ``auto`` policy between them) and the damage log (:mod:`bmvseg.video.damage`).  Frames and
their indexing are :mod:`bmvseg.video.frame`'s; the motion convention is
:mod:`bmvseg.video.motion`'s.

Ranges (``frames(start=s)``) give exactly a full run's frames, indices and fields from ``s`` on:
they seek to the I-frame before the first frame they need where timestamps make indices exact
(see :meth:`VideoReader.frames`), and re-encoding restarts its reference chain at fixed frame
boundaries (:data:`~bmvseg.video.reencoder.REENCODE_SEGMENT`) in every run, so where a run
starts does not change a field.  ``Frame.image`` is converted to RGB only when first read.

Memory is bounded: frames are decoded and yielded one at a time.  One PyAV detail: a frame whose
side data (the vectors) has been read is a reference cycle (the frame caches a side-data container
that points back to it), so its decoded picture is freed by Python's cyclic garbage collector,
not when the last reference goes.  With a large heap of long-lived objects (torch) full
collections are rare and hundreds of frames can wait for one; a long run should collect now and
then, cheaply after ``gc.freeze()`` of its set-up (what ``bmvseg segment`` does).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Generator, Iterator
from typing import BinaryIO

import av
import numpy as np

from bmvseg.errors import VideoError
from bmvseg.video.damage import DamageLog
from bmvseg.video.file_source import FileSource
from bmvseg.video.frame import Frame
from bmvseg.video.inputs import describe
from bmvseg.video.live_source import LiveSource, is_live
from bmvseg.video.motion import MotionField, grid_shape
from bmvseg.video.motion_source import (
    POLICIES,
    MotionSource,
    open_motion_source,
)
from bmvseg.video.source import ContainerSource

__all__ = ["VideoReader", "read_motion"]

log = logging.getLogger(__name__)

_PICT = {1: "I", 2: "P", 3: "B"}


class VideoReader:
    """Frames and motion fields of a video file, a seekable binary file object, or a live input.

    ``live``: None reads ``-`` (standard input) and URLs (``tcp://``, ``rtsp://``, ...) as live
    streams (:mod:`bmvseg.video.live_source`) and everything else as files; True reads any
    source as a live stream (a non-seekable file object, a named pipe, a device with
    ``format="v4l2"``); False only as a file.  ``timeout`` (seconds) bounds a live source's
    waits, ``format`` names the demuxer where FFmpeg cannot guess it.
    """

    def __init__(
        self,
        source: str | os.PathLike | BinaryIO,
        *,
        motion: str = "auto",
        block: int = 16,
        stream: int | None = None,
        live: bool | None = None,
        timeout: float | None = None,
        format: str | None = None,
    ) -> None:
        if motion not in POLICIES:
            raise VideoError(f"unknown motion policy {motion!r}: use one of {', '.join(POLICIES)}")
        if isinstance(block, bool) or not isinstance(block, int) or block <= 0 or block % 4:
            raise VideoError(f"block must be a positive multiple of 4 (e.g. 16, 8, 4), got {block}")
        self.source = source
        self.name = describe(source)
        self.policy = motion
        self.block = block
        self.decoded = 0  # frames the last frames() call decoded (ranges seek: fewer)
        self._damage = DamageLog()
        self.live = is_live(source) if live is None else bool(live)
        self._input: ContainerSource = (
            LiveSource(source, self.name, stream, timeout=timeout, format=format)
            if self.live
            else FileSource(source, self.name, stream, format=format)
        )
        inp = self._input
        try:
            self._motion = self._open_motion()
            inp.decode_first(self._motion.decoder_options)
        except BaseException:
            inp.close()
            raise
        # The stream's facts, fixed once opened.
        self.width, self.height, self.fps = inp.width, inp.height, inp.fps
        self.frame_count, self.rotation = inp.frame_count, inp.rotation
        self.stream_index, self.codec_info = inp.stream_index, inp.codec_info
        self.stream_notice, self.fps_notice = inp.stream_notice, inp.fps_notice

    def _open_motion(self) -> MotionSource:
        """The motion source the policy picks for this stream's facts."""
        inp = self._input
        try:
            return open_motion_source(
                self.policy, inp.codec_info, inp.height, inp.width, self.block, self.name
            )
        except ValueError as exc:
            raise VideoError(f"{self.name}: {exc}") from None

    # -- what is known so far ------------------------------------------------------------------

    @property
    def truncated(self) -> bool:
        """The last pass ended before the stream's end (cut off, or the decoder gave up)."""
        return self._input.truncated

    @property
    def truncation_reason(self) -> str | None:
        """Why the last pass stopped early (None when it was not truncated)."""
        return self._input.truncation_reason

    @property
    def motion_source(self) -> str:
        return self._motion.kind

    @property
    def motion_reason(self) -> str:
        return self._motion.reason

    @property
    def notice(self) -> str | None:
        """The motion notice (re-encoding and why), if any."""
        return self._motion.notice

    @property
    def damaged_frames(self) -> list[int]:
        """Frames of the last pass showing concealed pixels (see :mod:`bmvseg.video.damage`)."""
        return self._damage.damaged

    @property
    def concealed_frames(self) -> list[int]:
        """The frames the decoder itself flagged."""
        return self._damage.concealed

    @property
    def damage_notice(self) -> str | None:
        """One line naming the damaged frames, once some were met (None while there are none)."""
        return self._damage.notice(self.name)

    @property
    def notices(self) -> list[str]:
        """Every one-line notice about this input so far (stream choice, frame rate, motion,
        damage), in that order."""
        lines = [self.stream_notice, self.fps_notice, self.notice, self.damage_notice]
        return [line for line in lines if line]

    @property
    def grid_shape(self) -> tuple[int, int]:
        return grid_shape(self.height, self.width, self.block)

    # -- iteration -----------------------------------------------------------------------------

    def frames(
        self, *, images: bool = True, start: int = 0, end: int | None = None
    ) -> Iterator[Frame]:
        """Frames ``start <= index < end`` in presentation order, decoded one at a time.

        A range gives exactly the frames, indices and motion fields of a full run.  Decoding
        starts at the I-frame at or before the first frame the range needs (``start - 1``, or
        the start of its re-encoding segment), found with the container's index, when frame
        indices can be computed from timestamps: MP4/MOV or Matroska/WebM whose probed
        timestamps are exactly evenly spaced (constant frame rate).  Every frame decoded before
        ``start`` must then lie on that grid, else the range is decoded from frame 0 after all
        (nothing has been yielded by then).  Other streams (raw H.264, MPEG-TS, AVI, variable
        frame rate) are decoded from frame 0.  Frames before ``start`` are not converted to
        RGB; ``Frame.image`` converts only when first read.
        """
        if end is not None and end <= start:
            return
        seek = self._input.seek_plan(self._first_needed(start))
        if seek is not None:
            restart = yield from self._pass(images, start, end, seek)
            if not restart:
                return
            log.info("%s: timestamps off the frame grid after seeking: decoding from 0", self.name)
        yield from self._pass(images, start, end, None)

    def _first_needed(self, start: int) -> int:
        """The first frame a range starting at ``start`` must decode for its motion."""
        return 0 if start <= 0 else self._motion.first_needed(start)

    def _pass(
        self, images: bool, start: int, end: int | None, seek: int | None
    ) -> Generator[Frame, None, bool]:
        """One pass; returns True (before yielding anything) when seeking must be undone."""
        opened = self._input.open_pass(seek, self._motion.decoder_options)
        if opened is None:
            return True
        self.decoded = 0
        self._damage = DamageLog()
        need = self._first_needed(start)
        self._motion.begin(need)
        time_base = opened.stream.time_base
        prev: av.VideoFrame | None = None
        index = 0 if seek is None else -1  # -1: from the first frame's timestamp
        try:
            for vf in self._input.frames(opened):
                self.decoded += 1
                if seek is not None and index < start:  # every frame before start on the grid
                    placed = self._input.index_after_seek(vf.pts, index, need)
                    if placed is None:
                        return True
                    index = placed
                self._check_size(vf, index)
                wanted = index >= start
                pict = _PICT.get(int(vf.pict_type), "?")
                intra = pict == "I" or bool(vf.key_frame)
                damaged = self._damage.observe(index, bool(vf.is_corrupt), intra, wanted)
                motion = self._motion.field(vf, prev, pict, index, wanted)
                if wanted:
                    yield self._frame(vf, index, pict, motion, damaged, images, time_base)
                prev = vf
                index += 1
                if end is not None and index >= end:
                    break
            else:
                self._input.check_end(index, _seconds(prev, time_base))
        finally:
            self._motion.end()
            self.close()
        return False

    def _check_size(self, vf: av.VideoFrame, index: int) -> None:
        if (vf.width, vf.height) != (self.width, self.height):
            raise VideoError(
                f"{self.name}: frame size changes from {self.width}x{self.height} to "
                f"{vf.width}x{vf.height} at frame {index}; split the video there"
            )

    def _frame(
        self,
        vf: av.VideoFrame,
        index: int,
        pict: str,
        motion: MotionField | None,
        damaged: bool,
        images: bool,
        time_base: object,
    ) -> Frame:
        if motion is None or index == 0:
            motion = MotionField.invalid(self.height, self.width, self.block)
        t = _seconds(vf, time_base)
        return Frame(
            index,
            t if t is not None else index / self.fps,
            pict,
            None,
            motion,
            damaged,
            picture=vf if images else None,
        )

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        self._input.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _seconds(vf: av.VideoFrame | None, time_base: object) -> float | None:
    """A decoded frame's presentation time in seconds, where it has one."""
    if vf is None or vf.pts is None or not time_base:
        return None
    return float(vf.pts * time_base)


def read_motion(
    source: str | os.PathLike | BinaryIO,
    *,
    motion: str = "auto",
    block: int = 16,
    stream: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray, dict]:
    """All motion fields of a video at once: ``(mv (T,Hb,Wb,2), valid (T,Hb,Wb), pict_types,
    times (T,), info)``.  ``info`` holds the motion source and reason, sizes, fps, block,
    ``truncated``, ``notice`` (and all ``notices``), ``stream_index``, ``damaged_frames`` and
    the detected ``codec_info``.
    """
    with VideoReader(source, motion=motion, block=block, stream=stream) as reader:
        mvs, valids, picts, times = [], [], [], []
        for frame in reader.frames(images=False):
            mvs.append(frame.motion.mv)
            valids.append(frame.motion.valid)
            picts.append(frame.pict_type)
            times.append(frame.time)
        hb, wb = reader.grid_shape
        info = {
            "motion_source": reader.motion_source,
            "motion_reason": reader.motion_reason,
            "notice": reader.notice,
            "notices": reader.notices,
            "stream_index": reader.stream_index,
            "damaged_frames": list(reader.damaged_frames),
            "truncated": reader.truncated,
            "width": reader.width,
            "height": reader.height,
            "fps": reader.fps,
            "block": block,
            "codec_info": reader.codec_info,
        }
    mv = np.stack(mvs) if mvs else np.zeros((0, hb, wb, 2), np.float32)
    valid = np.stack(valids) if valids else np.zeros((0, hb, wb), bool)
    return mv.astype(np.float32), valid, picts, np.asarray(times, np.float64), info
