"""Where a frame's motion comes from: the :class:`MotionSource` protocol and the policy.

A motion source gives every decoded frame its :class:`~bmvseg.video.motion.MotionField`
(the convention is :mod:`bmvseg.video.motion`'s, the indexing :mod:`bmvseg.video.frame`'s)
whatever the stream's own reference structure.  The *motion policy* picks the source:

``native``
    :class:`~bmvseg.video.native_vectors.NativeVectors`: the stream's own vectors.  Frames
    without vectors (I-frames, codecs FFmpeg exports none for) get invalid fields.
``reencode``
    :class:`~bmvseg.video.reencoder.Reencoder`: the decoded frames re-encoded in memory.
``auto`` (default)
    :class:`AutoMotion`: ``native`` where the stream's vectors are exactly frame-to-previous-
    frame motion: H.264 with ``max_num_ref_frames == 1`` (read from the SPS) and no B-frames,
    MPEG-4 part 2, MPEG-1/2 and H.263 without B-frames, all of them not intra-only.  A mid-stream
    I-frame of such a stream has its frame pair estimated alone (two frames through the
    re-encoder).  Everything else (several references, B-frames, interlaced H.264,
    HEVC/VP9/AV1/MJPEG/... with no exported vectors, intra-only streams) is re-encoded.
    B-frames are looked for at open (packet timestamps out of decode order, the SPS's reorder
    count); if one still shows up later the reader switches to re-encoding from that frame on
    (frames before it were exact) and updates ``motion_source``/``motion_reason``/``notice``.

A new source (e.g. HEVC vectors from another decoder) is one class with the protocol's members
and its line in :func:`choose_motion_source` / :func:`open_motion_source`.
"""

from __future__ import annotations

import logging
from typing import Protocol

import av

from bmvseg.video.motion import MotionField
from bmvseg.video.native_vectors import NativeVectors
from bmvseg.video.reencoder import Reencoder

log = logging.getLogger(__name__)

POLICIES = ("auto", "native", "reencode")
# Codecs whose FFmpeg decoders export motion vectors (H.264 and the mpegvideo family).
VECTOR_CODECS = {"h264", "mpeg4", "mpeg1video", "mpeg2video", "h263", "h263p", "flv1"}


class MotionSource(Protocol):
    """Gives each decoded frame its field relative to the previous frame, one pass at a time.

    A pass calls :meth:`begin`, then :meth:`field` for every decoded frame in presentation
    order (also the frames before the range that were decoded only to reach it), then
    :meth:`end`, whatever ends the pass.
    """

    kind: str  # reported as VideoReader.motion_source, e.g. "native", "reencode"
    reason: str  # one line: why this source
    notice: str | None  # one line for the user where the choice deserves one, else None
    decoder_options: dict[str, str]  # added to the stream decoder's options

    def first_needed(self, start: int) -> int:
        """The first frame a range starting at ``start > 0`` must decode for its fields."""
        ...

    def begin(self, need: int) -> None:
        """A pass starts; ``need`` is :meth:`first_needed` of its range."""
        ...

    def field(
        self, vf: av.VideoFrame, prev: av.VideoFrame | None, pict: str, index: int, wanted: bool
    ) -> MotionField | None:
        """Frame ``index``'s field (None: all-invalid); ``wanted``: the range yields it."""
        ...

    def end(self) -> None:
        """Release what the pass holds (encoders)."""
        ...


class AutoMotion:
    """The ``auto`` policy: the chosen source, switched to re-encoding at a late B-frame."""

    def __init__(self, chosen: NativeVectors | Reencoder, name: str) -> None:
        self.current: MotionSource = chosen
        self.name = name
        self._geometry = (chosen.height, chosen.width, chosen.block)
        reencoding = chosen.kind == "reencode"
        self.notice = f"{name}: re-encoding for motion ({chosen.reason})" if reencoding else None
        self._need = 0

    @property
    def kind(self) -> str:
        return self.current.kind

    @property
    def reason(self) -> str:
        return self.current.reason

    @property
    def decoder_options(self) -> dict[str, str]:
        return self.current.decoder_options

    def first_needed(self, start: int) -> int:
        return self.current.first_needed(start)

    def begin(self, need: int) -> None:
        self._need = need
        self.current.begin(need)

    def field(
        self, vf: av.VideoFrame, prev: av.VideoFrame | None, pict: str, index: int, wanted: bool
    ) -> MotionField | None:
        if isinstance(self.current, NativeVectors) and pict == "B" and index > 0:
            self._switch(index, prev)
        return self.current.field(vf, prev, pict, index, wanted)

    def end(self) -> None:
        self.current.end()

    def _switch(self, index: int, prev: av.VideoFrame | None) -> None:
        old = self.current
        why = (
            f"B-frame found at frame {index} of a stream that announced none: re-encoding from "
            f"frame {index} on (earlier frames used the stream's vectors)"
        )
        reencoder = Reencoder(*self._geometry, why)
        old.end()
        reencoder.begin(self._need)
        if prev is not None and index >= self._need:  # the chain starts at the switch
            reencoder.continue_from(prev)
        self.current = reencoder
        self.notice = f"{self.name}: {why}"
        log.info(self.notice)


def open_motion_source(
    policy: str, info: dict, height: int, width: int, block: int, name: str
) -> MotionSource:
    """The motion source for a stream under ``policy`` (``info``: its codec facts).

    Raises ValueError where ``native`` is asked of a codec FFmpeg exports no vectors for.
    """
    kind, reason = choose_motion_source(policy, info)
    chosen: NativeVectors | Reencoder
    if kind == "native":
        chosen = NativeVectors(height, width, block, reason, estimate_gaps=policy == "auto")
    else:
        chosen = Reencoder(height, width, block, reason)
    return AutoMotion(chosen, name) if policy == "auto" else chosen


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
