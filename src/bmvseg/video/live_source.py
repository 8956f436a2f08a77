"""A stream that arrives: standard input (``-``), a URL FFmpeg opens, a device, a pipe.

Read once, in order, as it comes: no seeking, no read-ahead beyond the first packet (which
carries the in-band SPS the motion policy reads) and FFmpeg's own stream analysis at open
(bounded to :data:`ANALYSE_SECONDS` of stream time), and no frame count (``frame_count`` is None;
B-frames the first packet does not announce switch ``auto`` to re-encoding when they show up,
see :mod:`bmvseg.video.motion_source`).  A second pass is refused: the frames are gone.

Waiting is bounded for URLs and ``-``: ``timeout`` seconds to open, and as long again for each
read.  A URL that never answers fails at open with one line;
a stream that stalls later, or breaks off in a way the demuxer or decoder sees, ends the pass
with ``truncated`` True and the reason in ``truncation_reason``; a sender that closes the
connection ends it as a stream that ended.  A file object is read through Python and a named
pipe is opened by the operating system: neither wait is bounded (a FIFO without a writer
blocks until one comes).
"""

from __future__ import annotations

import io
import os
import re
import select
import stat
from collections.abc import Iterator
from typing import BinaryIO

import av

from bmvseg.errors import VideoError
from bmvseg.video.inputs import check_kind, reason
from bmvseg.video.source import LIMITS, ContainerSource, OpenedStream

# "scheme://...": tcp, udp, http(s), rtsp, rtmp, srt... (whatever FFmpeg's protocols open).
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
DEFAULT_TIMEOUT = 10.0  # seconds to connect, and to wait for each read
# Stream time FFmpeg's own analysis at open may read (its default, 5 s, is that much delay
# before the first frame).  Measured on a 15 fps MPEG-TS of H.264 sent over TCP: the default
# opened after 21-40 frames had arrived, 0.5 s after 9-13, with the frame rate still found.
ANALYSE_SECONDS = 0.5
_OPTIONS = {**LIMITS, "analyzeduration": str(round(ANALYSE_SECONDS * 1e6))}


def is_live(source: object) -> bool:
    """Whether a source names a stream that arrives: ``-`` or a URL."""
    return isinstance(source, str) and (source == "-" or bool(_URL.match(source)))


class LiveSource(ContainerSource):
    """A non-seekable input, read once from its first byte."""

    def __init__(
        self,
        source: str | os.PathLike | BinaryIO,
        name: str,
        stream: int | None,
        *,
        timeout: float | None = None,
        format: str | None = None,
    ) -> None:
        super().__init__(name)
        check_kind(source)
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise VideoError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        container = self._open(_target(source, name, self.timeout), format)
        try:
            self._setup(container, stream, 1)
        except BaseException:
            self.close()
            raise

    def _open(self, target: object, format: str | None) -> av.container.InputContainer:
        try:
            container = av.open(
                target, mode="r", format=format, options=_OPTIONS, timeout=self.timeout
            )
        except (av.error.ExitError, TimeoutError):
            raise VideoError(
                f"{self.name}: no answer within {self.timeout:g} s (is the sender running?)"
            ) from None
        except (av.FFmpegError, OSError, ValueError, TypeError) as exc:
            raise VideoError(f"{self.name}: cannot open the stream ({reason(exc)})") from None
        if not container.streams.video:
            found = len(container.streams)
            container.close()
            raise VideoError(f"{self.name}: no video stream ({found} other streams)")
        return container

    def open_pass(self, seek: int | None, decoder_options: dict[str, str]) -> OpenedStream | None:
        if self._pending is None:
            raise VideoError(f"{self.name}: a live stream is read once; its frames are gone")
        self._start_pass()
        opened, self._pending = self._pending, None
        return opened

    def frames(self, opened: OpenedStream) -> Iterator[av.VideoFrame]:
        try:
            yield from super().frames(opened)
        except OSError as exc:  # standard input's time-out, a file object's dropped socket
            self._mark_truncated(exc)

    def _mark_truncated(self, exc: Exception | str) -> None:
        if isinstance(exc, av.error.ExitError):
            exc = f"no data for {self.timeout:g} s"
        super()._mark_truncated(exc)


def _target(source: str | os.PathLike | BinaryIO, name: str, timeout: float) -> object:
    """What ``av.open`` reads: standard input with a time-out for ``-``, a URL or path as is,
    a file object."""
    if source == "-":
        return _TimedPipe(0, timeout)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and not is_live(source)):
        path = os.fspath(source)
        try:
            mode = os.stat(path).st_mode
        except OSError as exc:
            raise VideoError(f"{name}: cannot read ({reason(exc)})") from None
        if stat.S_ISDIR(mode):
            raise VideoError(f"{name}: is a directory, not a video")
        return path
    return source


class _TimedPipe(io.RawIOBase):
    """A file descriptor read with at most ``timeout`` seconds of waiting for each chunk
    (FFmpeg's own pipe reading blocks with no time-out)."""

    def __init__(self, fd: int, timeout: float) -> None:
        super().__init__()
        self._fd, self._timeout = fd, timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        ready, _, _ = select.select([self._fd], [], [], self._timeout)
        if not ready:
            raise TimeoutError(f"no data for {self._timeout:g} s")
        data = os.read(self._fd, len(buffer))
        buffer[: len(data)] = data
        return len(data)
