"""Known motion in, the same motion out: every stream structure, every frame t >= 1.

Each test renders a texture moved by an exactly known warp (bmvseg.data.textures), encodes it
with a real encoder through PyAV, reads it back with the reader and compares every frame's field
with the true backward flow at the cell centres.
"""

from __future__ import annotations

import io

import numpy as np
import pytest

from bmvseg.data.textures import block_flow, moving_texture_clip
from bmvseg.errors import VideoError
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.motion import MotionField, rasterise
from bmvseg.video.reader import read_motion

MAX_MEDIAN_EPE = 0.5  # px, per frame, on textured cells with one true motion


def _encode(frames, codec="libx264", options=None, fmt=None) -> io.BytesIO:
    buf = io.BytesIO()
    pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    encode_video(frames, buf, codec=codec, options=options, container_format=fmt, pix_fmt=pix_fmt)
    buf.seek(0)
    return buf


def _uniform_cells(flow: np.ndarray, block: int, tol: float) -> np.ndarray:
    """Cells over which the true flow varies by less than ``tol`` px (no motion boundary)."""
    h, w = flow.shape[:2]
    hb, wb = -(-h // block), -(-w // block)
    pad = np.pad(flow, ((0, hb * block - h), (0, wb * block - w), (0, 0)), mode="edge")
    cells = pad.reshape(hb, block, wb, block, 2)
    spread = cells.max(axis=(1, 3)) - cells.min(axis=(1, 3))
    return np.abs(spread).max(-1) < tol


def assert_recovers(
    kind,
    size,
    n,
    codec="libx264",
    options=None,
    *,
    fmt=None,
    motion="auto",
    block=16,
    speed=1.3,
    source=None,
):
    """Encode a known-motion clip, read it, check every frame; returns the reader's info."""
    h, w = size
    frames, flows = moving_texture_clip(kind, h, w, n, seed=3, speed=speed)
    mv, valid, picts, times, info = read_motion(
        _encode(frames, codec, options, fmt), motion=motion, block=block
    )
    hb, wb = -(-h // block), -(-w // block)
    assert mv.shape == (n, hb, wb, 2) and mv.dtype == np.float32
    assert valid.shape == (n, hb, wb) and valid.dtype == bool
    assert len(picts) == n and times.shape == (n,)
    assert not valid[0].any() and not mv[0].any(), "frame 0 must be an all-invalid zero field"
    assert np.all(np.diff(times) > 0)
    tol = 0.5 if kind == "zoom" else 0.1
    for t in range(1, n):
        cells = _uniform_cells(flows[t], block, tol)
        ok = valid[t] & cells
        assert ok.sum() >= 0.5 * cells.sum(), f"frame {t} ({picts[t]}): too few valid cells"
        err = np.linalg.norm(mv[t] - block_flow(flows[t], block), axis=-1)[ok]
        assert np.median(err) <= MAX_MEDIAN_EPE, (
            f"frame {t} ({picts[t]}, {info['motion_source']}): median EPE {np.median(err):.2f}"
        )
    if source is not None:
        assert info["motion_source"] == source, info["motion_reason"]
    return info, picts


@pytest.mark.parametrize("kind", ["translate", "zoom", "object"])
def test_one_reference_h264_uses_its_own_vectors(kind):
    info, _ = assert_recovers(kind, (96, 128), 10, options=X264_ONE_REF, source="native")
    assert info["codec_info"]["refs"] == 1


@pytest.mark.parametrize("kind", ["translate", "zoom"])
def test_x264_defaults_with_b_frames_and_three_refs_fall_back(kind):
    info, picts = assert_recovers(kind, (96, 128), 12, options={}, source="reencode")
    assert "B" in picts and "B-frames" in info["motion_reason"]
    assert info["notice"]


def test_several_references_without_b_frames_fall_back():
    info, picts = assert_recovers(
        "translate", (96, 128), 10, options={**X264_ONE_REF, "refs": "3"}, source="reencode"
    )
    assert "B" not in picts and "3 reference frames" in info["motion_reason"]


def test_mid_stream_i_frames_get_fields():
    info, picts = assert_recovers(
        "translate", (96, 128), 12, options={**X264_ONE_REF, "keyint": "4"}, source="native"
    )
    assert picts.count("I") >= 3  # checked on every frame, I-frames included


@pytest.mark.parametrize("codec", ["mpeg4", "mpeg2video"])
def test_mpeg_without_b_frames_is_native(codec):
    assert_recovers("translate", (96, 128), 10, codec, source="native")


def test_mpeg4_with_b_frames_falls_back():
    _, picts = assert_recovers("zoom", (96, 128), 10, "mpeg4", {"bf": "2"}, source="reencode")
    assert "B" in picts


def test_size_not_a_multiple_of_16():
    assert_recovers("object", (136, 200), 8, options=X264_ONE_REF, source="native")


def test_odd_size_mjpeg_goes_through_the_fallback():
    info, _ = assert_recovers("translate", (97, 131), 6, "mjpeg", fmt="avi", source="reencode")
    assert info["notice"] and "mjpeg" in info["notice"]


def test_hevc_has_no_vectors_and_falls_back():
    opts = {"preset": "ultrafast", "x265-params": "log-level=none"}
    info, _ = assert_recovers(
        "translate", (96, 128), 6, "libx265", opts, fmt="mp4", source="reencode"
    )
    assert "hevc" in info["motion_reason"]


@pytest.mark.parametrize("block", [8, 4])
def test_finer_grids(block):
    assert_recovers("translate", (96, 128), 6, options=X264_ONE_REF, block=block, source="native")
    assert_recovers("zoom", (96, 128), 6, options=X264_ONE_REF, block=block, motion="reencode")


def test_reencode_policy_on_a_native_stream():
    info, _ = assert_recovers("object", (96, 128), 8, options=X264_ONE_REF, motion="reencode")
    assert info["motion_source"] == "reencode"


def test_native_policy_is_honoured_and_refused_without_vectors():
    frames, _ = moving_texture_clip("translate", 64, 96, 6, seed=0)
    _, _, _, _, info = read_motion(_encode(frames, options={}), motion="native")
    assert info["motion_source"] == "native"
    with pytest.raises(VideoError, match="no motion vectors"):
        read_motion(_encode(frames, "mjpeg", fmt="avi"), motion="native")


def test_static_video_gives_zero_motion():
    frames, _ = moving_texture_clip("translate", 96, 128, 6, seed=5, speed=0.0)
    mv, valid, _, _, _ = read_motion(_encode(frames, options=X264_ONE_REF))
    assert valid[1:].mean() > 0.9
    assert np.abs(mv[1:][valid[1:]]).max() == 0.0


# -- rasterise on hand-made vector arrays ---------------------------------------------------------

_DTYPE = np.dtype(
    [
        ("source", "<i4"),
        ("w", "u1"),
        ("h", "u1"),
        ("src_x", "<i2"),
        ("src_y", "<i2"),
        ("dst_x", "<i2"),
        ("dst_y", "<i2"),
        ("flags", "<u8"),
        ("motion_x", "<i4"),
        ("motion_y", "<i4"),
        ("motion_scale", "<u2"),
    ]
)


def _vec(x0, y0, w, h, mx, my, scale=4, source=-1):
    cx, cy = x0 + w // 2, y0 + h // 2
    return (source, w, h, cx + mx // scale, cy + my // scale, cx, cy, 0, mx, my, scale)


def test_rasterise_partitions_fill_and_average_their_cells():
    vecs = np.array(
        [
            _vec(0, 0, 16, 16, -6, 2),  # cell (0,0): (-1.5, 0.5)
            _vec(16, 0, 8, 8, 4, 0),  # cell (0,1) from four 8x8s: mean (2, 0.5)
            _vec(24, 0, 8, 8, 4, 0),
            _vec(16, 8, 8, 8, 12, 4),
            _vec(24, 8, 8, 8, 12, 4),
            _vec(0, 16, 16, 8, 3, 0, scale=2),  # half-pel (MPEG-2): 16x8 halves of cell (1,0)
            _vec(0, 24, 16, 8, 1, 0, scale=2),
            _vec(16, 16, 16, 16, 40, 40, source=1),  # future reference: ignored
        ],
        dtype=_DTYPE,
    )
    f = rasterise(vecs, 32, 32, block=16)
    assert isinstance(f, MotionField) and f.mv.dtype == np.float32
    np.testing.assert_allclose(f.mv[0, 0], (-1.5, 0.5))
    np.testing.assert_allclose(f.mv[0, 1], (2.0, 0.5))
    np.testing.assert_allclose(f.mv[1, 0], (1.0, 0.0))
    assert f.valid.tolist() == [[True, True], [True, False]] and not f.mv[1, 1].any()
    f8 = rasterise(vecs, 32, 32, block=8)
    np.testing.assert_allclose(f8.mv[:2, 2], [(1.0, 0.0), (3.0, 1.0)])
    np.testing.assert_allclose(f8.mv[2:, 0], [(1.5, 0.0), (0.5, 0.0)])
    np.testing.assert_allclose(f8.mv[:2, :2].reshape(-1, 2), [(-1.5, 0.5)] * 4)
    assert not f8.valid[2:, 2:].any()


def test_rasterise_clips_macroblocks_past_the_frame_edge():
    vecs = np.array([_vec(16, 16, 16, 16, 4, -4)], dtype=_DTYPE)  # covers rows 16..31 of 20
    f = rasterise(vecs, 20, 20, block=4)
    assert f.grid_shape == (5, 5)
    assert f.valid[4:, 4:].all() and f.valid.sum() == 1
    assert rasterise(None, 20, 20).valid.sum() == 0


def test_stream_vectors_of_a_b_frame_stream_are_not_previous_frame_motion():
    """Why the fallback exists: forcing native vectors on x264's defaults misses the truth."""
    with pytest.raises(AssertionError, match="median EPE"):
        assert_recovers("translate", (96, 128), 12, options={}, motion="native")


@pytest.mark.parametrize("kind", ["translate", "zoom", "object"])
def test_clip_generator_flow_follows_the_convention(kind):
    """Sampling frame t-1 at p + true_flow[t](p) reproduces frame t (where t-1 saw the content)."""
    import cv2

    frames, flows = moving_texture_clip(kind, 64, 80, 3, seed=1, speed=1.7)
    assert not flows[0].any()
    ys, xs = np.mgrid[0:64, 0:80].astype(np.float32)
    for t in (1, 2):
        pulled = cv2.remap(
            frames[t - 1], xs + flows[t][..., 0], ys + flows[t][..., 1], cv2.INTER_CUBIC
        )
        inner = (slice(8, -8), slice(8, -8))
        err = np.abs(pulled[inner].astype(int) - frames[t][inner])
        if kind == "object":  # the object's edge pixels are aliased, ignore the few there
            assert np.median(err) == 0 and np.percentile(err, 90) <= 12
        else:
            assert np.percentile(err, 90) <= 6
