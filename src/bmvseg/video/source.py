"""A container's video stream as decoded frames: what every kind of input shares.

:class:`ContainerSource` opens nothing itself: a subclass opens the container (a seekable file,
see :mod:`bmvseg.video.file_source`) and hands it to :meth:`ContainerSource._setup`, which
chooses the stream and probes it; :meth:`ContainerSource.decode_first` then decodes up to the
first frame, so undecodable input fails at open, not mid-iteration.  Each pass over the frames
is an :class:`OpenedStream` from :meth:`ContainerSource.open_pass`; a subclass that can open its
input again (and seek) does so there, one that cannot (a live stream) gives its opened stream
once.

A stream that is cut off or that the decoder cannot continue stops there: the frames decoded
until then have been yielded and ``truncated`` is True.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import av

from bmvseg.errors import VideoError
from bmvseg.video.inputs import reason
from bmvseg.video.probe import Probe, codec_info, frame_rate, pick_stream, probe_packets

log = logging.getLogger(__name__)

# Largest frame accepted, in pixels (8192x8192, above 8K UHD).  A header claiming more is damaged
# or hostile: it is refused before any frame buffer is allocated (FFmpeg's stream probing alone
# allocated ~1.2 GB for a 16000x16000 claim), and the decoder refuses larger frames mid-stream.
MAX_PIXELS = 8192 * 8192
LIMITS = {"max_pixels": str(MAX_PIXELS)}
# Detect damage (and flag the frames concealed) rather than stop at it: see bmvseg.video.damage.
_DECODER_OPTIONS = {"err_detect": "crccheck+bitstream+buffer", **LIMITS}


@dataclass
class OpenedStream:
    """A container opened for one pass, and what was read from it ahead of decoding."""

    container: av.container.InputContainer
    stream: av.VideoStream
    packets: Iterator[av.Packet]  # the demuxer, past what was read ahead
    first: list[av.VideoFrame] = field(default_factory=list)  # frames decoded at open
    buffered: list[av.Packet] = field(default_factory=list)  # packets read ahead, not decoded
    error: Exception | None = None  # a demuxing error met while reading ahead


class ContainerSource:
    """The chosen video stream of a container: its facts, and its frames one pass at a time."""

    frame_count: int | None = None  # frames the container announces (None: unknown)

    def __init__(self, name: str) -> None:
        self.name = name
        self.truncated = False
        self.truncation_reason: str | None = None  # why the last pass stopped early
        self.stream_notice: str | None = None  # which of several video streams is read
        self.fps_notice: str | None = None  # the container's frame rate was not believed
        self.rotation = 0
        self._pending: OpenedStream | None = None  # opened at construction, for the first pass
        self._container: av.container.InputContainer | None = None

    def _setup(
        self, container: av.container.InputContainer, wanted: int | None, probe_limit: int | None
    ) -> Probe:
        """Choose the stream, check its size, read ahead ``probe_limit`` packets, keep them."""
        self._container = container
        stream, self.stream_index, self.stream_notice = pick_stream(container, wanted, self.name)
        self._stream_pos = stream.index  # among all the container's streams
        cc = stream.codec_context
        self.width, self.height = int(cc.width), int(cc.height)
        if self.width <= 0 or self.height <= 0:
            raise VideoError(f"{self.name}: video stream has no valid frame size (bad header?)")
        if self.width * self.height > MAX_PIXELS:
            raise VideoError(
                f"{self.name}: header claims {self.width}x{self.height} frames, more than "
                f"the {MAX_PIXELS} pixels accepted (damaged or forged header?)"
            )
        packets = container.demux(stream)
        probe = probe_packets(packets, self.name, probe_limit)
        self.fps, self.fps_notice = frame_rate(stream, probe, self.name)
        self.codec_info = codec_info(stream, probe)
        self._pending = OpenedStream(
            container, stream, packets, buffered=list(probe.buffered), error=probe.error
        )
        return probe

    def decode_first(self, decoder_options: dict[str, str]) -> av.VideoFrame:
        """Decode until the first frame of the pending pass; the frame."""
        opened = self._pending
        assert opened is not None, "decode_first() follows _setup()"
        configure(opened.stream, decoder_options)
        frames: list[av.VideoFrame] = []
        decode = opened.stream.codec_context.decode
        try:
            while opened.buffered and not frames:
                frames.extend(decode(opened.buffered.pop(0)))
            while not frames and opened.error is None:  # decoder delay beyond the read-ahead
                packet = next(opened.packets, None)
                frames.extend(decode(packet))  # None at the end: flush
                if packet is None:
                    break
        except av.error.EOFError:
            pass
        except av.FFmpegError as exc:
            if not frames:
                raise VideoError(f"{self.name}: cannot decode video ({reason(exc)})") from exc
        if not frames:
            raise VideoError(f"{self.name}: cannot decode video (no frame could be decoded)")
        opened.first = frames
        # The container's display rotation, degrees counter-clockwise.  Frames are yielded as
        # stored (motion vectors are in that orientation); callers report it.
        self.rotation = round(getattr(frames[0], "rotation", 0) or 0) % 360
        return frames[0]

    def open_pass(self, seek: int | None, decoder_options: dict[str, str]) -> OpenedStream | None:
        """The stream for one pass from its start, or from ``seek`` (a pts on the stream's
        time base, see :meth:`seek_plan`); None where that seek failed."""
        raise NotImplementedError

    def seek_plan(self, need: int) -> int | None:
        """The pts to seek to for frame ``need``, or None where seeking is not trusted."""
        return None

    def index_after_seek(self, pts: int | None, expected: int, need: int) -> int | None:
        """The index of a frame decoded after seeking (``expected``: -1 for the first), or
        None when its timestamp is off the grid (the pass must then start again from 0)."""
        return None

    def check_end(self, decoded: int, last_time: float | None) -> None:
        """The stream ended after ``decoded`` frames: mark it truncated if frames are missing."""

    def frames(self, opened: OpenedStream) -> Iterator[av.VideoFrame]:
        """Decoded frames; a demuxing/decoding error ends the stream as truncated."""
        yield from opened.first
        decode = opened.stream.codec_context.decode
        try:
            for packet in opened.buffered:
                out = decode(packet)
                yield from out
            if opened.error is not None:
                self._mark_truncated(opened.error)
                return
            while True:
                try:
                    packet = next(opened.packets)
                except StopIteration:
                    break
                yield from decode(packet)
            out = decode(None)  # demux ends with a flushing packet already; this is a no-op
        except av.error.EOFError:
            return
        except av.FFmpegError as exc:
            self._mark_truncated(exc)
            return
        yield from out

    def _start_pass(self) -> None:
        self.truncated, self.truncation_reason = False, None

    def _mark_truncated(self, exc: Exception | str) -> None:
        self.truncated, self.truncation_reason = True, reason(exc)
        log.info("%s: decoding stopped early (%s)", self.name, self.truncation_reason)

    def close(self) -> None:
        self._pending = None
        if self._container is not None:
            self._container.close()
            self._container = None


def configure(stream: av.VideoStream, decoder_options: dict[str, str]) -> None:
    """Single-threaded damage-detecting decoding, plus the motion source's options."""
    cc = stream.codec_context
    # One thread: under slice threading FFmpeg neither conceals nor flags damaged frames.
    cc.thread_count = 1
    cc.options = {**decoder_options, **_DECODER_OPTIONS}
