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
    options = dict(options or {})
    codec_options = (
        x264_params(options) if codec == "libx264" else {k: str(v) for k, v in options.items()}
    )
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(
        dest,
        mode="w",
        format=container_format or ("mp4" if not isinstance(dest, (str, os.PathLike)) else None),
    ) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt
        stream.options = codec_options
        first = True
        count = 0
        for rgb in frames:
            if first:
                stream.height, stream.width = rgb.shape[:2]
                first = False
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
            count += 1
        for packet in stream.encode():
            out.mux(packet)
    return {
        "codec": codec,
        "fps": float(rate),
        "pix_fmt": pix_fmt,
        "options": dict(options),
        "frames": count,
    }
