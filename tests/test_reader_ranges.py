"""Ranges: ``frames(start=s)`` seeks, and gives exactly the full run's frames from ``s`` on.

Issue 15: a range must not differ from a full run (frame indices, times, types, motion fields
byte for byte), whether the motion is the stream's own or re-encoded, while decoding only from
the I-frame before it where the container allows.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import bmvseg.video.reencoder as reencoder_module
from bmvseg.data.textures import moving_texture_clip
from bmvseg.video.encode import encode_video
from bmvseg.video.reader import VideoReader

H, W, N, KEYINT = 48, 64, 40, 12
ONE_REF_KEYINT = {"refs": "1", "bframes": "0", "keyint": str(KEYINT), "min-keyint": str(KEYINT),
                  "scenecut": "0"}


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return moving_texture_clip("translate", H, W, N, seed=3, speed=1.7)[0]


def _key(f) -> tuple:
    return (f.index, round(f.time, 9), f.pict_type, f.damaged, f.motion.mv.tobytes(),
            f.motion.valid.tobytes())


def _check_every_start(path: Path, motion: str, *, expect_seek: bool) -> None:
    reader = VideoReader(path, motion=motion)
    full = [_key(f) for f in reader.frames(images=False)]
    assert len(full) == N and reader.decoded == N
    for start in range(N):
        part = [_key(f) for f in reader.frames(images=False, start=start)]
        assert part == full[start:], f"start={start}"
        if expect_seek:  # decoding began at the I-frame before the first frame needed
            need = reader._first_needed(start)
            assert reader.decoded == N - need // KEYINT * KEYINT, (start, reader.decoded)
    ranged = [_key(f) for f in reader.frames(images=False, start=13, end=27)]
    assert ranged == full[13:27]


@pytest.mark.parametrize(
    "ext, motion", [("mp4", "native"), ("mkv", "native"), ("mp4", "reencode")]
)
def test_every_start_equals_the_full_run(ext, motion, frames, tmp_path):
    path = tmp_path / f"k{KEYINT}.{ext}"
    encode_video(frames, path, options=ONE_REF_KEYINT)
    _check_every_start(path, motion, expect_seek=True)


@pytest.mark.parametrize("segment, ext", [(7, "mp4"), (12, "mkv")])
def test_reencoding_segments_make_ranges_exact(segment, ext, frames, tmp_path, monkeypatch):
    """Segment boundaries inside the clip (the default, 60, lies past its 40 frames)."""
    monkeypatch.setattr(reencoder_module, "REENCODE_SEGMENT", segment)
    path = tmp_path / f"clip.{ext}"
    encode_video(frames, path, options=ONE_REF_KEYINT)
    _check_every_start(path, "reencode", expect_seek=True)
    with VideoReader(path, motion="reencode") as r:  # a boundary's field is motion too
        fields = [f.motion for f in r.frames(images=False)]
    assert all(fields[b].valid.mean() > 0.5 for b in range(segment, N, segment))


def test_streams_without_a_trusted_index_decode_from_zero(frames, tmp_path):
    """Raw H.264 (no container index) and variable frame rate: still exact, from frame 0."""
    raw = tmp_path / "clip.h264"
    encode_video(frames, raw, options=ONE_REF_KEYINT, container_format="h264")
    vfr = tmp_path / "vfr.mkv"
    with av.open(str(vfr), "w") as out:
        s = out.add_stream("libx264", rate=15)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"x264-params": f"ref=1:bframes=0:keyint={KEYINT}:scenecut=0"}
        s.codec_context.time_base = Fraction(1, 1000)
        pts = np.cumsum([0] + [40 + 30 * (i % 3) for i in range(N - 1)])
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts, vf.time_base = int(pts[i]), Fraction(1, 1000)
            for p in s.encode(vf):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    for path in (raw, vfr):
        reader = VideoReader(path)
        full = [_key(f) for f in reader.frames(images=False)]
        for start in (1, 13, 25, 39):
            assert [_key(f) for f in reader.frames(images=False, start=start)] == full[start:]
            assert reader.decoded == N


def test_images_are_converted_only_when_read(frames, tmp_path):
    path = tmp_path / "clip.mp4"
    encode_video(frames, path, options=ONE_REF_KEYINT)
    with VideoReader(path) as r:
        eager = [f.image.copy() for f in r.frames(start=20)]
        lazy = list(r.frames(start=20))
    assert all(f._image is None for f in lazy)  # nothing converted yet
    for f, img in zip(lazy, eager, strict=True):
        assert f.image is f.image and np.array_equal(f.image, img)
    assert lazy[0].i420() is not None  # the decoded picture stays: the overlay draws on it
    with VideoReader(path) as r:
        assert all(f.image is None for f in r.frames(images=False, end=3))
