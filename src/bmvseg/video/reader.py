"""Reading a compressed video as frames with their block motion relative to the previous frame.

Every frame ``t >= 1`` gets a :class:`~bmvseg.video.motion.MotionField` relative to frame
``t - 1`` whatever the stream's structure; frame 0 gets an all-invalid field.  Where the motion
comes from is the *motion policy*:

``native``
    The stream's own vectors (``+export_mvs``), past-referencing ones only.  Exact when every
    P-frame can reference nothing but the previous frame; otherwise an approximation, and
    frames without vectors (I-frames, codecs FFmpeg exports none for) get invalid fields.
``reencode``
    The decoded frames are re-encoded in memory, streaming, by
    :class:`~bmvseg.video.estimate.X264MotionEstimator` and its vectors are read; a fresh
    encoder every :data:`REENCODE_SEGMENT` frames.  Measured at 320x240 over 240 frames: an
    encoder opened and one frame encoded again per 60 frames (8.6 ms CPU against 2.4-3.0 ms
    per frame, so ~5% of the re-encoding time), end-point error against the true motion the
    same for a translation (0.098 px mean) and 0.260 vs 0.253 px for a zoom.
``auto`` (default)
    ``native`` where the stream's vectors are exactly frame-to-previous-frame motion: H.264 with
    ``max_num_ref_frames == 1`` (read from the SPS) and no B-frames, MPEG-4 part 2, MPEG-1/2 and
    H.263 without B-frames, all of them not intra-only.  A mid-stream I-frame of such a stream
    has its frame pair estimated alone (two frames through the re-encoder).  Everything else
    (several references, B-frames, interlaced H.264, HEVC/VP9/AV1/MJPEG/... with no exported
    vectors, intra-only streams) is re-encoded.  B-frames are looked for at open (packet
    timestamps out of decode order, the SPS's reorder count); if one still shows up later the
    reader switches to re-encoding from that frame on (frames before it were exact) and updates
    ``motion_source``/``motion_reason``/``notice``.

Intra-coded blocks inside P-frames have no vector: their cells are invalid (``mv = 0``).
Downstream code should treat them as unknown motion (the warp keeps the cached feature in place,
i.e. assumes zero motion, or refreshes them) rather than as a measured zero.

Ranges (``frames(start=s)``) give exactly a full run's frames, indices and fields from ``s`` on:
they seek to the I-frame before the first frame they need where timestamps make indices exact
(see :meth:`VideoReader.frames`), and re-encoding restarts its reference chain at fixed frame
boundaries (:data:`REENCODE_SEGMENT`) in every run, so where a run starts does not change a
field.  ``Frame.image`` is converted to RGB only when first read.

Memory is bounded: frames are decoded and yielded one at a time.  One PyAV detail: a frame whose
side data (the vectors) has been read is a reference cycle (the frame caches a side-data container
that points back to it), so its decoded picture is freed by Python's cyclic garbage collector,
not when the last reference goes.  With a large heap of long-lived objects (torch) full
collections are rare and hundreds of frames can wait for one; a long run should collect now and
then, cheaply after ``gc.freeze()`` of its set-up (what ``bmvseg segment`` does).

A stream that is cut off (fewer frames than the container announces) or that the decoder cannot
continue stops there: the frames decoded until then have been yielded and ``truncated`` is True.
Truncation is judged by the *video* stream's own frame count or duration (Matroska's per-track
``DURATION`` tag, a stream duration), never by the container's, which is the longest stream's:
audio that runs on past the video is not missing video.

Damage inside a frame (``error while decoding MB ...``) is concealed by FFmpeg's decoder, which
flags the frame (``AV_FRAME_FLAG_CORRUPT``).  Decoding is single-threaded because FFmpeg runs
neither error concealment nor that flag under slice threading, where a damaged multi-slice frame
came out patched and unflagged.  The reader does not stop there (one damaged macroblock would
cost the rest of the video) but reports it: :attr:`Frame.damaged` is True for a frame the decoder
concealed *and for every frame after it until the next I-frame*, since P-frames predict from the
concealed pixels (measured: 18% of the pixels of a 30-frame clip stayed wrong in each of the 15
frames after one damaged slice).  ``reader.damaged_frames`` lists them; ``damage_notice`` says
it in one line.  What downstream should do: never pass a damaged frame's labels off as clean
(record ``damaged_frames`` and print the notice), and make the first undamaged frame after a
damaged run a keyframe, so no clean frame gets features warped from concealed pixels.  Limits:
damage the decoder does not detect (a bit flip that still parses) cannot be seen; with B-frames,
the B-frames shown just before a damaged reference are not flagged; a frame whose slice headers
are destroyed may be dropped, which the frame count check then reports as truncation.

Inputs are regular files or seekable binary file objects: FIFOs, devices and sockets are
refused at open (a FIFO without a writer would block forever, and probing needs seeking).
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

from bmvseg.errors import VideoError
from bmvseg.video.estimate import X264MotionEstimator, motion_vectors
from bmvseg.video.h264 import find_sps
from bmvseg.video.motion import MotionField, grid_shape, rasterise

log = logging.getLogger(__name__)

POLICIES = ("auto", "native", "reencode")
# Codecs whose FFmpeg decoders export motion vectors (H.264 and the mpegvideo family).
VECTOR_CODECS = {"h264", "mpeg4", "mpeg1video", "mpeg2video", "h263", "h263p", "flv1"}
# Packets inspected at open to find B-frames (timestamps out of decode order), intra-only
# streams and the in-band SPS.
_PROBE_PACKETS = 64
_PICT = {1: "I", 2: "P", 3: "B"}
# Largest frame accepted, in pixels (8192x8192, above 8K UHD).  A header claiming more is damaged
# or hostile: it is refused before any frame buffer is allocated (FFmpeg's stream probing alone
# allocated ~1.2 GB for a 16000x16000 claim), and the decoder refuses larger frames mid-stream.
MAX_PIXELS = 8192 * 8192
_LIMITS = {"max_pixels": str(MAX_PIXELS)}
# Detect damage (and flag the frames concealed) rather than stop at it: see the module docstring.
_DECODER_OPTIONS = {"err_detect": "crccheck+bitstream+buffer", **_LIMITS}
# Frame rates outside (0, MAX_FPS] are not believed: the rate is taken from the timestamps.
MAX_FPS = 1000.0
_DEFAULT_FPS = 25.0
# Under re-encoding the estimator's reference chain restarts at every multiple of this many
# frames (frame b-1 is coded as an IDR frame of a fresh encoder, then b, b+1, ... as P-frames),
# whatever frame a run starts at: so a range's fields are byte-identical to a full run's.
REENCODE_SEGMENT = 60
# Containers whose index lets a range seek to the I-frame before it (see VideoReader.frames).
_SEEKABLE_FORMATS = {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"}
# Matroska's per-track statistics tag, e.g. "00:01:02.500000000".
_MKV_DURATION = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


class Frame:
    """One decoded frame in presentation order and its motion relative to the previous one.

    ``image`` is converted from the decoded picture to RGB when first read and then cached
    (the picture is released): frames whose image nobody reads (intermediate frames need only
    motion) cost no conversion.
    """

    __slots__ = ("index", "time", "pict_type", "motion", "damaged", "_image", "_picture")

    def __init__(
        self,
        index: int,
        time: float,
        pict_type: str,
        image: np.ndarray | None = None,
        motion: MotionField | None = None,
        damaged: bool = False,
        *,
        picture: av.VideoFrame | None = None,
    ) -> None:
        self.index = index  # 0-based presentation order among decoded frames
        self.time = time  # seconds: pts * time_base, or index / fps without pts
        self.pict_type = pict_type  # "I", "P", "B" or "?" of the input stream's frame
        self.motion = motion  # relative to frame index-1; frame 0: MotionField.invalid(...)
        self.damaged = damaged  # concealed by the decoder, or predicted from a concealed frame
        self._image = image
        self._picture = picture  # the decoded frame, until its image is first read

    @property
    def image(self) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB; None when the frames were read with ``images=False``."""
        if self._image is None and self._picture is not None:
            self._image = self._picture.to_ndarray(format="rgb24")
            self._picture = None
        return self._image

    @image.setter
    def image(self, value: np.ndarray | None) -> None:
        self._image, self._picture = value, None

    def __repr__(self) -> str:
        return (
            f"Frame(index={self.index}, time={self.time:.3f}, pict_type={self.pict_type!r}, "
            f"damaged={self.damaged})"
        )


@dataclass
class _Probe:
    """What the first packets say; they are kept and decoded first, so nothing is read twice."""

    packets: int = 0
    keyframes: int = 0
    reordered: bool = False
    first_packet: bytes | None = None
    buffered: list[av.Packet] = field(default_factory=list)
    error: Exception | None = None  # a demuxing error met while probing
    pts: list[int] = field(default_factory=list)

    def pts_step(self) -> Fraction | None:
        """The frame duration in ticks when the probed timestamps are evenly spaced, else None.

        Evenly spaced up to the container's rounding: Matroska stores 15 fps as 0, 67, 133, 200
        ms, so the step is a fraction (200/3) and each timestamp lies within a tick of its place.
        """
        pts = np.unique(np.asarray(self.pts, np.int64))
        if len(pts) < 3:
            return None
        step = Fraction(int(pts[-1] - pts[0]), len(pts) - 1)
        if step <= 0:
            return None
        places = [pts[0] + i * step for i in range(len(pts))]
        return step if all(abs(int(p) - q) < 1 for p, q in zip(pts, places, strict=True)) else None

    def pts_rate(self, time_base: object) -> float | None:
        """Frames per second from the median gap of the probed packets' timestamps."""
        gaps = np.diff(np.unique(np.asarray(self.pts, np.int64)))
        if not len(gaps) or not time_base:
            return None
        return 1.0 / float(np.median(gaps) * time_base)


def _describe(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(os.fspath(source))
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def _check_source(source: object, name: str) -> int | None:
    """Refuse what cannot be read as a video file; the start position of a file object.

    Only ``str``/``os.PathLike`` paths of regular files and readable, seekable binary file
    objects are accepted.  Paths are ``stat``-ed, never opened, before the check: opening a FIFO
    without a writer blocks forever.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise VideoError(
            f"video must be a path (str or os.PathLike) or a binary file object, got "
            f"{type(source).__name__} (a bytes path? pass os.fsdecode(path); video data? "
            "wrap it in io.BytesIO)"
        )
    if isinstance(source, (str, os.PathLike)):
        try:
            path = os.fspath(source)
            info = os.stat(path)
        except FileNotFoundError:
            raise VideoError(f"{name}: no such file") from None
        except (OSError, TypeError, ValueError) as exc:
            raise VideoError(f"{name}: cannot read ({_reason(exc)})") from None
        if stat.S_ISDIR(info.st_mode):
            raise VideoError(f"{name}: is a directory, not a video")
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise VideoError(
                f"{name}: is a {kind}, not a regular file (bmvseg reads seekable video files; "
                "save the stream to a file first)"
            )
        return None
    if not callable(getattr(source, "read", None)):
        raise VideoError(
            f"video must be a path (str or os.PathLike) or a binary file object, got "
            f"{type(source).__name__}"
        )
    if isinstance(source, io.TextIOBase):
        raise VideoError(f"{name}: a text-mode file object; open the video with 'rb'")
    try:
        seekable = bool(source.seekable()) if hasattr(source, "seekable") else False
        position = source.tell() if seekable else None  # type: ignore[attr-defined]
    except (OSError, ValueError) as exc:
        raise VideoError(f"{name}: file object cannot be used ({_reason(exc)})") from None
    if position is None:
        raise VideoError(
            f"{name}: file object is not seekable (a pipe or socket?); bmvseg needs to seek "
            "in the video: save it to a file or read it into io.BytesIO"
        )
    return int(position)


_FILE_KINDS = {
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


def _mkv_duration(stream: av.VideoStream) -> float | None:
    """Seconds from Matroska's per-track ``DURATION`` tag, if present and well formed."""
    text = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    match = _MKV_DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    h, m, sec = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(sec)


def pick_stream(container: av.container.InputContainer, wanted: int | None, name: str) -> tuple:
    """The video stream to read, its number among the video streams, and a notice if chosen.

    ``wanted`` numbers the container's *video* streams from 0 (as ``ffprobe``'s ``v:N``).
    Without it: the largest frame area, then the ``default`` disposition, then the first.
    Size comes first because muxers mark the first track default on their own (FFmpeg's MP4
    muxer does), so a small preview stored first would win on that flag; cover art
    (``attached_pic``) is never chosen while a real video stream exists.
    """
    videos = list(container.streams.video)
    if wanted is not None:
        if isinstance(wanted, bool) or not isinstance(wanted, int):
            raise VideoError(f"stream must be a video stream number (int), got {wanted!r}")
        if not 0 <= wanted < len(videos):
            raise VideoError(
                f"{name}: no video stream {wanted} (it has {len(videos)}: 0..{len(videos) - 1})"
            )
        return videos[wanted], wanted, None
    if len(videos) == 1:
        return videos[0], 0, None

    def rank(i: int) -> tuple:
        cc = videos[i].codec_context
        area = int(cc.width or 0) * int(cc.height or 0)
        return (not _has(videos[i], "attached_pic"), area, _has(videos[i], "default"), -i)

    index = max(range(len(videos)), key=rank)
    sizes = ", ".join(
        f"{i}: {s.codec_context.width}x{s.codec_context.height}" for i, s in enumerate(videos)
    )
    cc = videos[index].codec_context
    notice = (
        f"{name}: {len(videos)} video streams ({sizes}); reading stream {index} "
        f"({cc.width}x{cc.height}, the largest); choose another with --stream N"
    )
    return videos[index], index, notice


def _has(stream: av.VideoStream, flag: str) -> bool:
    """Whether the stream's disposition carries ``flag`` (``default``, ``attached_pic``)."""
    try:
        return bool(stream.disposition & getattr(av.stream.Disposition, flag))
    except (AttributeError, TypeError):
        return False


class VideoReader:
    """Frames and motion fields of a video file or seekable binary file object."""

    def __init__(
        self,
        source: str | os.PathLike | BinaryIO,
        *,
        motion: str = "auto",
        block: int = 16,
        stream: int | None = None,
    ) -> None:
        if motion not in POLICIES:
            raise VideoError(f"unknown motion policy {motion!r}: use one of {', '.join(POLICIES)}")
        if isinstance(block, bool) or not isinstance(block, int) or block <= 0 or block % 4:
            raise VideoError(f"block must be a positive multiple of 4 (e.g. 16, 8, 4), got {block}")
        self.source = source
        self.name = _describe(source)
        self.policy = motion
        self.block = block
        self.truncated = False
        self.notice: str | None = None  # the motion notice (re-encoding and why)
        self.stream_notice: str | None = None  # which of several video streams is read
        self.fps_notice: str | None = None  # the container's frame rate was not believed
        self.damaged_frames: list[int] = []  # see the module docstring
        self.concealed_frames: list[int] = []  # the frames the decoder itself flagged
        self.decoded = 0  # frames the last frames() call decoded (ranges seek: fewer)
        self._start_pos = _check_source(source, self.name)
        self._container: av.container.InputContainer | None = None
        self._pending: tuple | None = None  # the opened stream, ready for the first frames()
        container = self._open()
        try:
            stream_obj, self.stream_index, self.stream_notice = pick_stream(
                container, stream, self.name
            )
            self._stream_pos = stream_obj.index  # among all the container's streams
            cc = stream_obj.codec_context
            self.width, self.height = int(cc.width), int(cc.height)
            if self.width <= 0 or self.height <= 0:
                raise VideoError(f"{self.name}: video stream has no valid frame size (bad header?)")
            if self.width * self.height > MAX_PIXELS:
                raise VideoError(
                    f"{self.name}: header claims {self.width}x{self.height} frames, more than "
                    f"the {MAX_PIXELS} pixels accepted (damaged or forged header?)"
                )
            packets = container.demux(stream_obj)
            probe = self._probe(packets)
            self.fps, self.fps_notice = self._frame_rate(stream_obj, probe)
            self._expect(container, stream_obj)
            self.codec_info = self._codec_info(stream_obj, probe)
            self.motion_source, self.motion_reason = self._decide(probe)
            self._pending = self._first_frames(container, stream_obj, probe, packets)
            self._grid = (probe.pts_step(), self._pending[2][0].pts)
            self._seekable_format = container.format.name in _SEEKABLE_FORMATS
            # The container's display rotation, degrees counter-clockwise.  Frames are yielded as
            # stored (motion vectors are in that orientation); callers report it.
            self.rotation = round(getattr(self._pending[2][0], "rotation", 0) or 0) % 360
        except BaseException:
            container.close()
            raise
        self._container = container
        if self.motion_source == "reencode" and self.policy == "auto":
            self.notice = f"{self.name}: re-encoding for motion ({self.motion_reason})"

    @property
    def notices(self) -> list[str]:
        """Every one-line notice about this input so far (stream choice, frame rate, motion,
        damage), in that order."""
        lines = [self.stream_notice, self.fps_notice, self.notice, self.damage_notice]
        return [line for line in lines if line]

    @property
    def damage_notice(self) -> str | None:
        """One line naming the damaged frames, once some were met (None while there are none)."""
        if not self.damaged_frames:
            return None
        concealed = _spans(self.concealed_frames) or "none flagged here"
        return (
            f"{self.name}: the decoder concealed damage in frame(s) {concealed}; frames "
            f"{_spans(self.damaged_frames)} show concealed pixels (up to the next I-frame) "
            "and cannot be trusted"
        )

    # -- opening and probing -------------------------------------------------------------------

    def _frame_rate(self, stream: av.VideoStream, probe: _Probe) -> tuple[float, str | None]:
        """The average frame rate, or the timestamps' rate when the container's is absurd."""
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        declared = float(rate) if rate else 0.0
        if 0 < declared <= MAX_FPS:
            return declared, None
        measured = probe.pts_rate(stream.time_base)
        said = f"an average frame rate of {declared:g} fps" if declared else "no frame rate"
        if measured is not None and 0 < measured <= MAX_FPS:
            return measured, (
                f"{self.name}: the container declares {said}; using {measured:.6g} fps "
                "from the timestamps"
            )
        return _DEFAULT_FPS, f"{self.name}: the container declares {said}; assuming 25 fps"

    def _expect(self, container: av.container.InputContainer, stream: av.VideoStream) -> None:
        """How many frames (or how many seconds) the video stream should hold.

        An exact count from the container's index (MP4), else the video stream's own duration
        (a stream duration, Matroska's ``DURATION`` tag) as a time to reach.  The container's
        duration is used only when the video is its only stream: it is the longest stream's.
        """
        self._count_exact = bool(stream.frames)
        self.frame_count: int | None = int(stream.frames) or None
        self._end_time: float | None = None  # where the stream ends (s), when estimated
        if self.frame_count is not None:
            return
        start = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
        seconds = _mkv_duration(stream)
        if seconds is None and stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        if seconds is None and len(container.streams) == 1:
            seconds = (container.duration or 0) / av.time_base
            start = (container.start_time or 0) / av.time_base
        if seconds:
            self.frame_count = round(seconds * self.fps) or None
            self._end_time = start + seconds if seconds > 0 else None

    def _open(self) -> av.container.InputContainer:
        """A fresh container positioned at the start (file objects are rewound)."""
        try:
            if self._start_pos is not None:
                self.source.seek(self._start_pos)  # type: ignore[union-attr]
            container = av.open(self.source, mode="r", options=_LIMITS)
        except FileNotFoundError as exc:
            raise VideoError(f"{self.name}: no such file") from exc
        except IsADirectoryError as exc:
            raise VideoError(f"{self.name}: is a directory, not a video") from exc
        except (av.FFmpegError, OSError, ValueError, TypeError) as exc:
            raise VideoError(
                f"{self.name}: not a readable video, or truncated/corrupt ({_reason(exc)})"
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

    def _probe(self, packets: Iterator[av.Packet]) -> _Probe:
        """Demux (not decode) the first packets: B-frames, intra-only, the in-band SPS."""
        probe = _Probe()
        last_pts = None
        try:
            for packet in packets:
                probe.buffered.append(packet)
                if packet.size == 0:
                    continue
                if probe.first_packet is None:
                    probe.first_packet = bytes(packet)
                probe.packets += 1
                probe.keyframes += bool(packet.is_keyframe)
                if packet.pts is not None:
                    probe.pts.append(int(packet.pts))
                    probe.reordered |= last_pts is not None and packet.pts < last_pts
                    last_pts = packet.pts if last_pts is None else max(last_pts, packet.pts)
                if probe.packets >= _PROBE_PACKETS:
                    break
        except av.FFmpegError as exc:
            probe.error = exc
        if not probe.packets:
            reason = _reason(probe.error) if probe.error else "no video data"
            raise VideoError(f"{self.name}: cannot decode video ({reason})")
        return probe

    def _configure(self, stream: av.VideoStream) -> None:
        cc = stream.codec_context
        # One thread: under slice threading FFmpeg neither conceals nor flags damaged frames.
        cc.thread_count = 1
        native = self.motion_source == "native"
        cc.options = {"flags2": "+export_mvs", **_DECODER_OPTIONS} if native else _DECODER_OPTIONS

    def _first_frames(
        self,
        container: av.container.InputContainer,
        stream: av.VideoStream,
        probe: _Probe,
        packets: Iterator[av.Packet],
    ) -> tuple:
        """Decode until the first frame (undecodable input fails at open, not mid-iteration)."""
        self._configure(stream)
        frames: list[av.VideoFrame] = []
        buffered = list(probe.buffered)
        decode = stream.codec_context.decode
        try:
            while buffered and not frames:
                frames.extend(decode(buffered.pop(0)))
            while not frames and probe.error is None:  # decoder delay beyond the probed packets
                packet = next(packets, None)
                frames.extend(decode(packet))  # None at the end: flush
                if packet is None:
                    break
        except av.error.EOFError:
            pass
        except av.FFmpegError as exc:
            if not frames:
                raise VideoError(f"{self.name}: cannot decode video ({_reason(exc)})") from exc
        if not frames:
            raise VideoError(f"{self.name}: cannot decode video (no frame could be decoded)")
        return container, stream, frames, buffered, packets, probe.error

    def _codec_info(self, stream: av.VideoStream, probe: _Probe) -> dict:
        cc = stream.codec_context
        info: dict = {
            "codec": cc.name,
            "profile": cc.profile,
            "pix_fmt": cc.pix_fmt,
            "has_b_frames": bool(cc.has_b_frames),
            "reordered_packets": probe.reordered,
            "intra_only": probe.packets > 1 and probe.keyframes == probe.packets,
            "refs": None,
        }
        if cc.name == "h264":
            sps = find_sps(cc.extradata, probe.first_packet)
            if sps is not None:
                info["refs"] = sps.max_num_ref_frames
                info["max_num_reorder_frames"] = sps.max_num_reorder_frames
                info["interlaced"] = not sps.frame_mbs_only
        return info

    def _decide(self, probe: _Probe) -> tuple[str, str]:
        """The motion source and a one-line reason for it (see :func:`choose_motion_source`)."""
        try:
            return choose_motion_source(self.policy, self.codec_info)
        except ValueError as exc:
            raise VideoError(f"{self.name}: {exc}") from None

    # -- iteration -----------------------------------------------------------------------------

    def frames(
        self, *, images: bool = True, start: int = 0, end: int | None = None
    ) -> Iterator[Frame]:
        """Frames ``start <= index < end`` in presentation order, decoded one at a time.

        A range gives exactly the frames, indices and motion fields of a full run.  Decoding
        starts at the I-frame at or before the first frame the range needs (``start - 1``, or
        the start of its re-encoding segment, see :data:`REENCODE_SEGMENT`), found with the
        container's index, when frame indices can be computed from timestamps: MP4/MOV or
        Matroska/WebM whose probed timestamps are exactly evenly spaced (constant frame rate).
        Every frame decoded before ``start`` must then lie on that grid, else the range is
        decoded from frame 0 after all (nothing has been yielded by then).  Other streams (raw
        H.264, MPEG-TS, AVI, variable frame rate) are decoded from frame 0.  Frames before
        ``start`` are not converted to RGB; ``Frame.image`` converts only when first read.
        """
        if end is not None and end <= start:
            return
        need = self._first_needed(start)
        seek = self._seek_plan(need)
        if seek is not None:
            restart = yield from self._frames(images, start, end, seek)
            if not restart:
                return
            log.info("%s: timestamps off the frame grid after seeking: decoding from 0", self.name)
        yield from self._frames(images, start, end, None)

    def _first_needed(self, start: int) -> int:
        """The first frame a range starting at ``start`` must decode for its motion."""
        if start <= 0:
            return 0
        if self.motion_source == "native":
            return start - 1  # the previous frame, for a mid-stream I-frame's pair
        return max(start // REENCODE_SEGMENT * REENCODE_SEGMENT - 1, 0)

    def _seek_plan(self, need: int) -> int | None:
        """The pts to seek to for frame ``need``, or None where seeking is not trusted."""
        step, first = self._grid
        if need <= 0 or step is None or first is None or not self._seekable_format:
            return None
        return first + round(need * step)

    def _frames(
        self, images: bool, start: int, end: int | None, seek: int | None
    ) -> Iterator[Frame]:
        """One pass; returns True (before yielding anything) when seeking must be undone."""
        if self._pending is not None and seek is None:  # the stream opened by __init__
            container, stream, first, buffered, packets, error = self._pending
            self._pending = None
        else:  # iterating again, or seeking: a fresh container
            self.close()
            container = self._container = self._open()
            stream = container.streams[self._stream_pos]
            self._configure(stream)
            if seek is not None:
                try:
                    container.seek(seek, backward=True, any_frame=False, stream=stream)
                except av.FFmpegError:
                    return True
            first, buffered, packets, error = [], [], container.demux(stream), None
        self.truncated = False
        self.damaged_frames, self.concealed_frames = [], []
        self.decoded = 0
        in_damage = False  # a concealed frame was met and no I-frame has come since
        native = self.motion_source == "native"
        need = self._first_needed(start)
        chain: X264MotionEstimator | None = None  # the re-encoding segment's estimator
        prev: av.VideoFrame | None = None
        time_base = stream.time_base
        step, first_pts = self._grid
        index = 0 if seek is None else -1  # -1: from the first frame's timestamp
        try:
            for vf in self._decode(stream, first, buffered, packets, error):
                self.decoded += 1
                if seek is not None and index < start:  # every frame before start on the grid
                    at = _grid_index(vf.pts, first_pts, step)
                    if at is None or at != (index if index >= 0 else min(at, need)):
                        return True
                    index = at
                if (vf.width, vf.height) != (self.width, self.height):
                    raise VideoError(
                        f"{self.name}: frame size changes from {self.width}x{self.height} to "
                        f"{vf.width}x{vf.height} at frame {index}; split the video there"
                    )
                pict = _PICT.get(int(vf.pict_type), "?")
                wanted = index >= start
                concealed = bool(vf.is_corrupt)
                in_damage = concealed or (in_damage and pict != "I" and not vf.key_frame)
                motion: MotionField | None = None
                if native and pict == "B" and self.policy == "auto" and index > 0:
                    native = False
                    self._switch_to_reencode(index)
                    if prev is not None and index >= need:  # the chain starts at the switch
                        chain = self._estimator()
                        chain.push(prev)
                if native:
                    if wanted:
                        motion = self._native_field(vf, pict, index, prev)
                        if motion is None:  # mid-stream I-frame: estimate this pair alone
                            motion = self._pair_field(prev, vf)
                elif index >= need:  # re-encoding: one chain per segment, see REENCODE_SEGMENT
                    if chain is None:
                        chain = self._estimator()
                    field_ = chain.push(vf)
                    motion = field_ if wanted else None
                    if (index + 1) % REENCODE_SEGMENT == 0:  # last frame of a segment:
                        chain.close()  # it also starts the next segment's chain
                        chain = self._estimator()
                        chain.push(vf)
                if wanted:
                    if motion is None or index == 0:
                        motion = MotionField.invalid(self.height, self.width, self.block)
                    t = float(vf.pts * time_base) if vf.pts is not None and time_base else None
                    if in_damage:
                        self.damaged_frames.append(index)
                        if concealed:
                            self.concealed_frames.append(index)
                    yield Frame(
                        index,
                        t if t is not None else index / self.fps,
                        pict,
                        None,
                        motion,
                        in_damage,
                        picture=vf if images else None,
                    )
                prev = vf
                index += 1
                if end is not None and index >= end:
                    break
            else:
                last = prev.pts * time_base if prev and prev.pts is not None and time_base else None
                self._check_count(index, None if last is None else float(last))
        finally:
            if chain is not None:
                chain.close()
            self.close()
        return False

    def _pair_field(self, prev: av.VideoFrame | None, vf: av.VideoFrame) -> MotionField:
        """One frame pair through a fresh re-encoder (the same field in every run)."""
        if prev is None:
            return MotionField.invalid(self.height, self.width, self.block)
        pair = self._estimator()
        try:
            pair.push(prev)
            return pair.push(vf)
        finally:
            pair.close()

    def _decode(
        self,
        stream: av.VideoStream,
        first: list[av.VideoFrame],
        buffered: list[av.Packet],
        packets: Iterator[av.Packet],
        error: Exception | None,
    ) -> Iterator[av.VideoFrame]:
        """Decoded frames; a demuxing/decoding error ends the stream as truncated."""
        yield from first
        decode = stream.codec_context.decode
        try:
            for packet in buffered:
                out = decode(packet)
                yield from out
            if error is not None:
                self._mark_truncated(error)
                return
            while True:
                try:
                    packet = next(packets)
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

    def _mark_truncated(self, exc: Exception | str) -> None:
        self.truncated = True
        log.info("%s: decoding stopped early (%s)", self.name, _reason(exc))

    def _check_count(self, decoded: int, last_time: float | None = None) -> None:
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

    def _native_field(
        self, vf: av.VideoFrame, pict: str, index: int, prev: av.VideoFrame | None
    ) -> MotionField | None:
        """The stream's field for this frame; None where auto must estimate the pair instead.

        That is every frame without exported vectors: I-frames, P-frames coded all-intra, and
        the last frame of an MPEG-2 stream, which FFmpeg's decoder returns at the flush
        without its vectors.
        """
        if index == 0:
            return MotionField.invalid(self.height, self.width, self.block)
        vectors = motion_vectors(vf)
        if vectors is not None and len(vectors):
            return rasterise(vectors, self.height, self.width, self.block)
        if self.policy == "native" or prev is None:
            return MotionField.invalid(self.height, self.width, self.block)
        return None

    def _estimator(self) -> X264MotionEstimator:
        return X264MotionEstimator(self.height, self.width, block=self.block)

    def _switch_to_reencode(self, index: int) -> None:
        self.motion_source = "reencode"
        self.motion_reason = (
            f"B-frame found at frame {index} of a stream that announced none: re-encoding from "
            f"frame {index} on (earlier frames used the stream's vectors)"
        )
        self.notice = f"{self.name}: {self.motion_reason}"
        log.info(self.notice)

    # -- lifetime ------------------------------------------------------------------------------

    @property
    def grid_shape(self) -> tuple[int, int]:
        return grid_shape(self.height, self.width, self.block)

    def close(self) -> None:
        self._pending = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _grid_index(pts: int | None, first: int | None, step: Fraction | None) -> int | None:
    """The frame index of a timestamp on the constant-rate grid (within a tick), else None."""
    if pts is None or first is None or not step:
        return None
    k = round(Fraction(pts - first) / step)
    return k if k >= 0 and abs(pts - first - k * step) < 1 else None


def _spans(indices: list[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    parts: list[str] = []
    for i in indices:
        if parts and i == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        else:
            parts.append(str(i))
    return ", ".join(parts)


def _reason(exc: BaseException | str) -> str:
    if isinstance(exc, str):
        return exc
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())



def choose_motion_source(policy: str, info: dict) -> tuple[str, str]:
    """``("native" | "reencode", reason)`` for a stream: a pure function of its facts.

    ``info`` is :attr:`VideoReader.codec_info` (codec, ``refs`` and the reorder count from the
    SPS, ``has_b_frames``, ``reordered_packets``, ``intra_only``, ``interlaced``); ``policy`` is
    the user's (see the module docstring).  Native vectors are used only where they are exactly
    frame ``t`` -> ``t - 1`` motion.  Raises ValueError where ``native`` is asked of a codec
    FFmpeg exports no vectors for.
    """
    codec = info["codec"]
    if policy == "reencode":
        return "reencode", "re-encoding requested (--motion reencode)"
    if codec not in VECTOR_CODECS:
        if policy == "native":
            raise ValueError(
                f"FFmpeg exports no motion vectors for {codec}; use --motion auto or reencode"
            )
        return "reencode", f"{codec} streams carry no motion vectors FFmpeg can export"
    if policy == "native":
        return "native", f"stream's own {codec} vectors requested (--motion native)"
    if info["intra_only"]:
        return "reencode", f"{codec} stream is intra-only (every frame a keyframe)"
    b_frames = info["reordered_packets"]
    if codec == "h264":
        refs = info["refs"]
        reorder = info.get("max_num_reorder_frames")
        b_frames = b_frames or bool(reorder) or (reorder is None and info["has_b_frames"])
        if b_frames:
            return "reencode", "H.264 with B-frames: vectors also point into the future"
        if refs is None:
            return "reencode", "H.264 reference count unknown (no readable SPS)"
        if info.get("interlaced"):
            return "reencode", "interlaced H.264: field vectors are not frame motion"
        if refs != 1:
            why = f"H.264 with {refs} reference frames: stream vectors may point past t-1"
            return "reencode", why
        return "native", "H.264 with 1 reference frame and no B-frames: vectors are t -> t-1"
    if codec == "mpeg4":
        b_frames = b_frames or info["has_b_frames"]
    if b_frames:
        return "reencode", f"{codec} with B-frames: P-vectors skip the B-frames before them"
    return "native", f"{codec} without B-frames: P-frames reference the previous frame"

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
