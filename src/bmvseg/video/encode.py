"""Writing frames to a compressed video with PyAV.

Used by tests, the synthetic-scene generator, the re-encoding motion fallback's checks, and the
overlay writer.  The encoder settings are part of every experiment, so :func:`encode_video`
returns them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import BinaryIO

import av
import numpy as np

# x264 settings under which the stream's own vectors are exactly frame-to-previous-frame motion:
# one reference frame, no B-frames, no I-frames after the first.
X264_ONE_REF = {"refs": "1", "bframes": "0", "keyint": "100000", "scenecut": "0"}
# Clips bmvseg makes to measure on (evaluation runs, generated scenes, fusion-training windows):
# H.264 as a camera in a streaming/baseline-like profile writes it, so its own vectors are
# t -> t-1 motion.
CLIP_OPTIONS = {"crf": "18", "preset": "medium", **X264_ONE_REF}
# The overlay video of a segment run: a preview, so the cheapest preset (about 2.5x faster than
# veryfast, for files about twice as large).
OVERLAY_OPTIONS = {"crf": "23", "preset": "ultrafast"}


def x264_params(options: Mapping[str, str]) -> dict[str, str]:
    """Codec options for libx264: keys x264 knows go through ``x264-params``."""
    x264_keys = {"refs", "bframes", "keyint", "min-keyint", "scenecut", "b-adapt", "subme", "me"}
    # x264 itself spells the reference count "ref"; an unknown x264-params key is silently ignored,
    # so the FFmpeg-style "refs" must be translated or the stream keeps x264's default of 3.
    params = ":".join(
        f"{'ref' if k == 'refs' else k}={v}" for k, v in options.items() if k in x264_keys
    )
    rest = {k: str(v) for k, v in options.items() if k not in x264_keys}
    if params:
        rest["x264-params"] = params
    return rest


# Timestamps given to ``VideoWriter.write(time=...)`` are kept to 1/90000 s (MPEG's clock).
TIME_BASE = Fraction(1, 90000)


class VideoWriter:
    """Streaming encoder: ``write`` RGB frames one by one, ``close`` to flush (context manager).

    The frame size is taken from the first frame; the stream holds no more than the encoder's
    own lookahead in memory.  Frames are spaced ``1 / fps`` apart unless every ``write`` gives
    the frame's ``time`` (seconds, e.g. the input's ``Frame.time``): then the output keeps the
    input's timing, variable or not, whatever rate its container declares, shifted so that the
    first frame is at 0.  A time not after the previous one (a damaged input) is moved just
    after it, since an encoder refuses timestamps that do not increase.
    """

    def __init__(
        self,
        dest: str | os.PathLike | BinaryIO,
        *,
        fps: float = 15.0,
        codec: str = "libx264",
        options: Mapping[str, str] | None = None,
        pix_fmt: str = "yuv420p",
        container_format: str | None = None,
    ) -> None:
        self.options = dict(options or {})
        self.codec, self.pix_fmt = codec, pix_fmt
        self.rate = Fraction(fps).limit_denominator(1001)
        if container_format is None and not isinstance(dest, (str, os.PathLike)):
            container_format = "mp4"
        if not (self.rate > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        self._out = av.open(dest, mode="w", format=container_format)
        self._stream = None
        self._timed: bool | None = None  # frames carry their own times (set by the first write)
        self._t0 = 0.0
        self._last_pts = -1
        self.count = 0

    def write(self, rgb: np.ndarray, time: float | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame; ``time`` in seconds on every call or none."""
        h, w = rgb.shape[:2]
        if (h | w) % 2 and self.pix_fmt == "yuv420p":  # 4:2:0 needs even sizes: repeat an edge
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"), time)

    def write_i420(self, i420: np.ndarray, time: float | None = None) -> None:
        """Encode one ``(H * 3 / 2, W)`` uint8 I420 frame (Y, U, V planes; even sides) as it
        is: no colour conversion when the stream is ``yuv420p``."""
        self._encode(av.VideoFrame.from_ndarray(i420, format="yuv420p"), time)

    def _encode(self, frame: av.VideoFrame, time: float | None) -> None:
        timed = time is not None
        if self._timed is None:
            self._timed, self._t0 = timed, float(time) if timed else 0.0
        elif timed != self._timed:
            raise ValueError("VideoWriter.write: give time= for every frame or for none")
        if self._stream is None:
            stream = self._out.add_stream(self.codec, rate=self.rate)
            stream.pix_fmt = self.pix_fmt
            stream.height, stream.width = frame.height, frame.width
            stream.options = (
                x264_params(self.options)
                if self.codec == "libx264"
                else {k: str(v) for k, v in self.options.items()}
            )
            if timed:
                stream.codec_context.time_base = TIME_BASE
            self._stream = stream
        if timed:
            pts = round((float(time) - self._t0) / TIME_BASE)  # type: ignore[arg-type]
            pts = max(pts, self._last_pts + 1)
            frame.pts, frame.time_base = pts, TIME_BASE
            self._last_pts = pts
        for packet in self._stream.encode(frame):
            self._out.mux(packet)
        self.count += 1

    def close(self) -> None:
        if self._stream is not None:
            for packet in self._stream.encode():
                self._out.mux(packet)
        self._out.close()

    def settings(self) -> dict[str, object]:
        """The encoder settings, for experiment records."""
        return {
            "codec": self.codec,
            "fps": float(self.rate),
            "pix_fmt": self.pix_fmt,
            "options": dict(self.options),
            "frames": self.count,
        }

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_video(
    frames: Iterable[np.ndarray],
    dest: str | os.PathLike | BinaryIO,
    *,
    fps: float = 15.0,
    codec: str = "libx264",
    options: Mapping[str, str] | None = None,
    pix_fmt: str = "yuv420p",
    container_format: str | None = None,
) -> dict[str, object]:
    """Encode (H, W, 3) uint8 RGB frames; returns the settings used (for experiment records).

    ``options`` are codec options under FFmpeg's/x264's own names (``crf``, ``preset``, ``refs``,
    ``bframes``, ``keyint`` …).  For libx264 the x264-only keys are folded into ``x264-params``.
    """
    with VideoWriter(
        dest,
        fps=fps,
        codec=codec,
        options=options,
        pix_fmt=pix_fmt,
        container_format=container_format,
    ) as writer:
        for rgb in frames:
            writer.write(rgb)
    return writer.settings()
