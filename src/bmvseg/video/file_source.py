"""A seekable video file or file object: probed at open, opened again (and seeked) per pass.

Ranges seek to the I-frame before the first frame they need where timestamps make indices
exact: MP4/MOV or Matroska/WebM (:data:`_SEEKABLE_FORMATS`) whose probed timestamps are evenly
spaced.  A stream that ends with fewer frames than the container announces is truncated; see
:meth:`FileSource.check_end`.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import BinaryIO

import av

from bmvseg.errors import VideoError
from bmvseg.video.inputs import check_source, reason
from bmvseg.video.probe import expected_length
from bmvseg.video.source import LIMITS, ContainerSource, OpenedStream, configure

# Containers whose index lets a range seek to the I-frame before it (see VideoReader.frames).
_SEEKABLE_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}


class FileSource(ContainerSource):
    """A regular file or a seekable binary file object (rewound to where it was given)."""

    def __init__(
        self,
        source: str | os.PathLike | BinaryIO,
        name: str,
        stream: int | None,
        *,
        format: str | None = None,
    ) -> None:
        super().__init__(name)
        self._source, self._format = source, format
        self._start_pos = check_source(source, name)
        container = self._open()
        try:
            probe = self._setup(container, stream, None)
            length = expected_length(container, container.streams[self._stream_pos], self.fps)
        except BaseException:
            self.close()
            raise
        self.frame_count = length.frame_count
        self._count_exact, self._end_time = length.exact, length.end_time
        self._step = probe.pts_step()
        self._first_pts: int | None = None
        self._seekable_format = container.format.name in _SEEKABLE_FORMATS

    def decode_first(self, decoder_options: dict[str, str]) -> av.VideoFrame:
        first = super().decode_first(decoder_options)
        self._first_pts = first.pts
        return first

    def _open(self) -> av.container.InputContainer:
        """A fresh container positioned at the start (file objects are rewound)."""
        try:
            if self._start_pos is not None:
                self._source.seek(self._start_pos)  # type: ignore[union-attr]
            container = av.open(self._source, mode="r", format=self._format, options=LIMITS)
        except FileNotFoundError as exc:
            raise VideoError(f"{self.name}: no such file") from exc
        except IsADirectoryError as exc:
            raise VideoError(f"{self.name}: is a directory, not a video") from exc
        except (av.FFmpegError, OSError, ValueError, TypeError) as exc:
            raise VideoError(
                f"{self.name}: not a readable video, or truncated/corrupt ({reason(exc)})"
            ) from exc
        if not container.streams.video:
            found = len(container.streams)
            container.close()
            if not found:  # e.g. an MP4 whose index (moov) is missing or zeroed
                raise VideoError(
                    f"{self.name}: no streams found (a missing or damaged index, e.g. MP4 moov?)"
                )
            raise VideoError(f"{self.name}: no video stream")
        return container

    def open_pass(self, seek: int | None, decoder_options: dict[str, str]) -> OpenedStream | None:
        self._start_pass()
        if self._pending is not None and seek is None:  # the stream opened at construction
            opened, self._pending = self._pending, None
            return opened
        self.close()  # iterating again, or seeking: a fresh container
        container = self._container = self._open()
        stream = container.streams[self._stream_pos]
        configure(stream, decoder_options)
        if seek is not None:
            try:
                container.seek(seek, backward=True, any_frame=False, stream=stream)
            except av.FFmpegError:
                return None
        return OpenedStream(container, stream, container.demux(stream))

    def seek_plan(self, need: int) -> int | None:
        if need <= 0 or self._step is None or self._first_pts is None:
            return None
        return self._first_pts + round(need * self._step) if self._seekable_format else None

    def index_after_seek(self, pts: int | None, expected: int, need: int) -> int | None:
        at = _grid_index(pts, self._first_pts, self._step)
        if at is None or at != (expected if expected >= 0 else min(at, need)):
            return None
        return at

    def check_end(self, decoded: int, last_time: float | None) -> None:
        """FFmpeg often just stops at a cut-off or garbled stream: compare with the container.

        Without an exact count, the last frame's time is compared with the container's duration
        instead when both are known: a count estimated as duration x average rate is wrong for
        variable frame rate, which must not read as truncated.
        """
        expected = self.frame_count
        if expected is None or self.truncated:
            return
        if not self._count_exact and self._end_time is not None and last_time is not None:
            if last_time + max(2.0 / self.fps, 0.02 * self._end_time) < self._end_time:
                self._mark_truncated(
                    f"decoding stopped at {last_time:.2f} s of the {self._end_time:.2f} s "
                    "the container announces"
                )
            return
        slack = 0 if self._count_exact else max(1, round(0.02 * expected))
        if decoded + slack < expected:
            self._mark_truncated(f"{decoded} of the {expected} frames the container announces")


def _grid_index(pts: int | None, first: int | None, step: Fraction | None) -> int | None:
    """The frame index of a timestamp on the constant-rate grid (within a tick), else None."""
    if pts is None or first is None or not step:
        return None
    k = round(Fraction(pts - first) / step)
    return k if k >= 0 and abs(pts - first - k * step) < 1 else None
