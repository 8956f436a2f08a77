"""Frame-to-previous-frame motion for streams whose own vectors cannot give it.

The fallback re-encodes the decoded frames in memory with libx264 under settings that make every
P-block reference exactly the previous frame (one reference, no B-frames, no I-frames after the
first, zero latency so nothing is buffered), decodes that stream with ``+export_mvs`` and reads
its vectors.  This is what the paper measured as "H.264 compression time" (2.78 ms/frame).

The estimator is streaming: one frame in, its field out.  Pushing a frame with ``key=True``
restarts the chain there (that frame is coded as an I-frame and gets no field), which is how the
reader estimates a single frame pair, e.g. across a mid-stream I-frame of an otherwise native
stream: ``push(prev, key=True); push(cur)``.

``bench/motion.py`` compares x264 presets and FFmpeg's ``mestimate`` filter (see
``bench/RESULTS-motion.md``); :data:`X264_ESTIMATOR_OPTIONS` is the chosen setting.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from bmvseg.video.motion import MotionField, rasterise

# ultrafast with quarter-pel refinement (subme=1; ultrafast alone is full-pel only), one
# reference, no B-frames, no scene-cut or keyint I-frames, no lookahead (bounded memory, one
# packet out per frame in), no deblocking (the reconstruction only serves as the next reference;
# its looks do not matter), a constant QP.  Only luma is encoded (gray): motion search uses luma
# and chroma would cost a third more for nothing.  Chosen by bench/motion.py, see
# bench/RESULTS-motion.md (qp 30 vs 18: 25% faster, median error 0.14 vs 0.12 px), and checked
# again by bench/kernel_costs.py at 960x540: one push costs ~5 ms of CPU (encode 3.4, decode 1.2,
# rasterise 0.2); me=hex, merange 4/8, no-fast-pskip, dct-decimate=0, psy=0 change neither
# cost nor error beyond noise, qp 33/36 save <10% and lose accuracy on zoom (0.15/0.18 vs
# 0.13 px); a prototype encoding at half resolution with 8x8 partitions cut the wall time by
# a third or more but doubled the error (0.27 vs 0.13 px zoom, 0.20 vs 0.05 pan), so it is not used.
X264_ESTIMATOR_OPTIONS: dict[str, str] = {
    "preset": "ultrafast",
    "tune": "zerolatency",
    "x264-params": (
        "ref=1:bframes=0:keyint=infinite:min-keyint=1:scenecut=0:rc-lookahead=0:"
        "sync-lookahead=0:subme=1:me=dia:qp=30:aq-mode=0:no-deblock=1"
    ),
}
# Formats whose first plane is 8-bit luma: the estimator takes it as is.
_LUMA_FIRST = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21"}


def x264_estimator_options(block: int = 16, **extra: str) -> dict[str, str]:
    """Estimator settings; finer grids (block < 16) also let x264 split into 8x8 partitions."""
    opts = dict(X264_ESTIMATOR_OPTIONS)
    params = opts["x264-params"]
    if block < 16:
        params += ":partitions=p8x8"
    for key, value in extra.items():
        if key in ("preset", "tune"):
            opts[key] = value
        else:
            params += f":{key}={value}"
    opts["x264-params"] = params
    return opts


def motion_vectors(frame: av.VideoFrame) -> np.ndarray | None:
    """The structured array of a decoded frame's exported motion vectors, or None."""
    for data in frame.side_data:
        if getattr(data, "type", None) is not None and data.type.name == "MOTION_VECTORS":
            return data.to_ndarray()
    return None


class X264MotionEstimator:
    """Streaming frame-to-previous-frame motion by in-memory one-reference H.264 re-encoding."""

    def __init__(
        self,
        height: int,
        width: int,
        *,
        block: int = 16,
        options: dict[str, str] | None = None,
        threads: int = 1,
    ) -> None:
        self.height, self.width, self.block = height, width, block
        # 4:2:0 needs even sizes; an odd row/column is replicated and its vectors ignored.
        self._ew, self._eh = width + (width & 1), height + (height & 1)
        self.options = dict(options or x264_estimator_options(block))
        self._threads = threads
        self._open()

    def _open(self) -> None:
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height = self._ew, self._eh
        enc.pix_fmt = "gray"
        enc.time_base = Fraction(1, 25)
        enc.thread_count = self._threads
        enc.options = self.options
        enc.open()
        dec = av.CodecContext.create("h264", "r")
        # Vectors are parsed from the bitstream: the pixels need no deblocking.
        dec.options = {"flags2": "+export_mvs", "skip_loop_filter": "all"}
        dec.thread_count = 1
        self._enc, self._dec = enc, dec
        self._pts = 0

    def _luma(self, frame: av.VideoFrame | np.ndarray) -> av.VideoFrame:
        """A new gray frame of the encoder's (even) size holding the frame's luma."""
        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if frame.format.name in _LUMA_FIRST:
            plane = frame.planes[0]
            y = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
            y = y[: frame.height, : frame.width]
        else:
            y = frame.reformat(format="gray").to_ndarray()
        if y.shape != (self._eh, self._ew):
            y = np.pad(y, ((0, self._eh - y.shape[0]), (0, self._ew - y.shape[1])), "edge")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(y), format="gray")

    def push(self, frame: av.VideoFrame | np.ndarray, *, key: bool = False) -> MotionField:
        """Encode one frame (the next in presentation order) and return its field vs the last.

        ``frame`` is a decoded ``av.VideoFrame`` or an (H, W, 3) uint8 RGB array.  The first
        frame and every ``key=True`` frame get an all-invalid field.
        """
        vf = self._luma(frame)
        first = self._pts == 0
        vf.pts = self._pts
        self._pts += 1
        vf.pict_type = av.video.frame.PictureType.I if key and not first else 0
        decoded = []
        for packet in self._enc.encode(vf):
            decoded.extend(self._dec.decode(packet))
        if len(decoded) != 1:  # zero-latency settings guarantee one frame out per frame in
            raise RuntimeError(f"re-encoder returned {len(decoded)} frames for one input")
        out = decoded[0]
        if first or key or out.pict_type != av.video.frame.PictureType.P:
            return MotionField.invalid(self.height, self.width, self.block)
        return rasterise(motion_vectors(out), self.height, self.width, self.block)

    def close(self) -> None:
        self._enc = self._dec = None  # type: ignore[assignment]
