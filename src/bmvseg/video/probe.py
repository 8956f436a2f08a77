"""What a container says about its video before decoding: the stream, rate, length and codec.

The first packets are demuxed (not decoded) and kept, so nothing is read twice: they show
B-frames (timestamps out of decode order), intra-only streams and the in-band SPS.  Truncation
is judged by the *video* stream's own frame count or duration (Matroska's per-track ``DURATION``
tag, a stream duration), never by the container's, which is the longest stream's: audio that runs
on past the video is not missing video.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

from bmvseg.errors import VideoError
from bmvseg.video.h264 import find_sps
from bmvseg.video.inputs import reason

# Packets inspected at open to find B-frames, intra-only streams and the in-band SPS.
_PROBE_PACKETS = 64
# Frame rates outside (0, MAX_FPS] are not believed: the rate is taken from the timestamps.
MAX_FPS = 1000.0
_DEFAULT_FPS = 25.0
# Matroska's per-track statistics tag, e.g. "00:01:02.500000000".
_MKV_DURATION = re.compile(r"^(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")


@dataclass
class Probe:
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


def probe_packets(packets: Iterator[av.Packet], name: str, limit: int | None = None) -> Probe:
    """Demux (not decode) the first ``limit`` packets: B-frames, intra-only, the in-band SPS."""
    limit = _PROBE_PACKETS if limit is None else limit
    probe = Probe()
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
            if probe.packets >= limit:
                break
    except av.FFmpegError as exc:
        probe.error = exc
    if not probe.packets:
        why = reason(probe.error) if probe.error else "no video data"
        raise VideoError(f"{name}: cannot decode video ({why})")
    return probe


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


def frame_rate(stream: av.VideoStream, probe: Probe, name: str) -> tuple[float, str | None]:
    """The average frame rate, or the timestamps' rate when the container's is absurd."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    declared = float(rate) if rate else 0.0
    if 0 < declared <= MAX_FPS:
        return declared, None
    measured = probe.pts_rate(stream.time_base)
    said = f"an average frame rate of {declared:g} fps" if declared else "no frame rate"
    if measured is not None and 0 < measured <= MAX_FPS:
        return measured, (
            f"{name}: the container declares {said}; using {measured:.6g} fps from the timestamps"
        )
    return _DEFAULT_FPS, f"{name}: the container declares {said}; assuming 25 fps"


@dataclass(frozen=True)
class Length:
    """How long the video stream should be: what a cut-off stream is judged against."""

    frame_count: int | None  # exact (the container's index) or estimated from a duration
    exact: bool
    end_time: float | None  # where the stream ends (s), when the count is estimated


def expected_length(
    container: av.container.InputContainer, stream: av.VideoStream, fps: float
) -> Length:
    """How many frames (or how many seconds) the video stream should hold.

    An exact count from the container's index (MP4), else the video stream's own duration
    (a stream duration, Matroska's ``DURATION`` tag) as a time to reach.  The container's
    duration is used only when the video is its only stream: it is the longest stream's.
    """
    if stream.frames:
        return Length(int(stream.frames), True, None)
    start = float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0
    seconds = _mkv_duration(stream)
    if seconds is None and stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    if seconds is None and len(container.streams) == 1:
        seconds = (container.duration or 0) / av.time_base
        start = (container.start_time or 0) / av.time_base
    if not seconds:
        return Length(None, False, None)
    return Length(round(seconds * fps) or None, False, start + seconds if seconds > 0 else None)


def _mkv_duration(stream: av.VideoStream) -> float | None:
    """Seconds from Matroska's per-track ``DURATION`` tag, if present and well formed."""
    text = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    match = _MKV_DURATION.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    h, m, sec = match.groups()
    return int(h) * 3600 + int(m) * 60 + float(sec)


def codec_info(stream: av.VideoStream, probe: Probe) -> dict:
    """The facts the motion policy decides on (see ``choose_motion_source``)."""
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
