"""Property tests for the motion rasteriser (the warp's properties are in tests/test_warp.py).

Random macroblock layouts (skipped/intra, 16x16, 16x8, 8x16, 8x8 with optional 4x4
sub-partitions, some future-referencing), random frame sizes including non-multiples of 16, and
cell sizes 16/8/4 are checked against a brute-force reference of the documented semantics
(:func:`bmvseg.video.motion.rasterise`): each past-referencing partition adds the area it shares
with a cell; a cell's vector is the area-weighted mean; cells no partition touches are invalid
with zero motion.  The vector array has the dtype of FFmpeg's real exported side data.
"""

from __future__ import annotations

import io
from functools import cache

import av
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bmvseg.data.textures import moving_texture_clip
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.estimate import motion_vectors
from bmvseg.video.motion import grid_shape, rasterise

# (w, h) of the partitions a macroblock splits into, with their offsets inside it.
SPLITS = {
    "16x16": [(0, 0, 16, 16)],
    "16x8": [(0, 0, 16, 8), (0, 8, 16, 8)],
    "8x16": [(0, 0, 8, 16), (8, 0, 8, 16)],
    "8x8": [(x, y, 8, 8) for y in (0, 8) for x in (0, 8)],
}


@cache
def ffmpeg_dtype() -> np.dtype:
    """The structured dtype FFmpeg exports motion vectors in, read from a real P-frame."""
    frames, _ = moving_texture_clip("translate", 32, 48, 3, seed=0)
    buf = io.BytesIO()
    encode_video(frames, buf, options=X264_ONE_REF)
    buf.seek(0)
    with av.open(buf) as c:
        stream = c.streams.video[0]
        stream.codec_context.options = {"flags2": "+export_mvs"}
        for frame in c.decode(stream):
            mvs = motion_vectors(frame)
            if mvs is not None and len(mvs):
                return mvs.dtype
    raise AssertionError("no exported vectors in a P-frame")


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, ...]]]:
    """A frame size and the partitions of its macroblocks: (x0, y0, w, h, mx, my, scale, src)."""
    h, w = draw(st.integers(1, 72)), draw(st.integers(1, 72))
    parts: list[tuple[int, ...]] = []
    for my_ in range(-(-h // 16)):
        for mx_ in range(-(-w // 16)):
            kind = draw(st.sampled_from(["intra", *SPLITS]))
            if kind == "intra":
                continue
            for dx, dy, pw, ph in SPLITS[kind]:
                x0, y0 = mx_ * 16 + dx, my_ * 16 + dy
                subs = [(x0, y0, pw, ph)]
                if kind == "8x8" and draw(st.booleans()):  # 4x4 sub-partitions
                    subs = [(x0 + sx, y0 + sy, 4, 4) for sy in (0, 4) for sx in (0, 4)]
                for sub in subs:
                    scale = draw(st.sampled_from([1, 2, 4]))
                    mv = draw(st.tuples(st.integers(-96, 96), st.integers(-96, 96)))
                    source = draw(st.sampled_from([-1, -1, -1, 1]))  # some future references
                    parts.append((*sub, *mv, scale, source))
    # aligned partitions wholly outside the frame's grid: must be ignored, never indexed
    hb, wb = -(-h // 16), -(-w // 16)
    for _ in range(draw(st.integers(0, 3))):
        x0 = draw(st.sampled_from([-32, -16, 16 * wb, 16 * (wb + 2)]))
        y0 = draw(st.sampled_from([-16, 0, 16 * hb]))
        parts.append((x0, y0, 16, 16, 4, 4, 4, -1))
    return h, w, parts


def as_ffmpeg(parts: list[tuple[int, ...]]) -> np.ndarray:
    arr = np.zeros(len(parts), ffmpeg_dtype())
    for i, (x0, y0, pw, ph, mx, my, scale, source) in enumerate(parts):
        cx, cy = x0 + pw // 2, y0 + ph // 2
        arr[i]["source"], arr[i]["w"], arr[i]["h"] = source, pw, ph
        arr[i]["dst_x"], arr[i]["dst_y"] = cx, cy
        arr[i]["src_x"], arr[i]["src_y"] = cx + mx // scale, cy + my // scale  # rounded: unused
        arr[i]["motion_x"], arr[i]["motion_y"], arr[i]["motion_scale"] = mx, my, scale
    return arr


def reference(parts, h: int, w: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute force: each cell's area shared with each past partition, weighted mean vector."""
    hb, wb = grid_shape(h, w, block)
    weight = np.zeros((hb, wb))
    acc = np.zeros((hb, wb, 2))
    for x0, y0, pw, ph, mx, my, scale, source in parts:
        if source >= 0:
            continue
        for r in range(hb):
            for c in range(wb):
                ox = min(x0 + pw, (c + 1) * block) - max(x0, c * block)
                oy = min(y0 + ph, (r + 1) * block) - max(y0, r * block)
                if ox > 0 and oy > 0:
                    weight[r, c] += ox * oy
                    acc[r, c] += ox * oy * np.array([mx / scale, my / scale])
    valid = weight > 0
    mv = np.where(valid[..., None], acc / np.where(valid, weight, 1)[..., None], 0.0)
    return mv, valid


@given(layout=layouts(), block=st.sampled_from([16, 8, 4]))
@settings(max_examples=80, deadline=None)
def test_rasterise_matches_the_documented_semantics(layout, block):
    h, w, parts = layout
    field = rasterise(as_ffmpeg(parts) if parts else None, h, w, block)
    hb, wb = -(-h // block), -(-w // block)
    assert field.mv.shape == (hb, wb, 2) and field.valid.shape == (hb, wb)
    assert field.mv.dtype == np.float32 and field.valid.dtype == bool and field.block == block
    mv, valid = reference(parts, h, w, block)
    np.testing.assert_array_equal(field.valid, valid)
    np.testing.assert_allclose(field.mv, mv, atol=1e-4)
    assert not field.mv[~field.valid].any()  # uncovered cells: invalid and exactly zero


@given(layout=layouts(), block=st.sampled_from([16, 8, 4]))
@settings(max_examples=40, deadline=None)
def test_each_covered_cell_gets_its_macroblocks_vector(layout, block):
    """With one vector per macroblock, however it is split, every cell of a coded macroblock
    gets exactly that vector and every cell of an intra one stays invalid: the split's
    partitions cover each cell once, with no gap and no double count."""
    h, w, parts = layout
    per_mb: dict[tuple[int, int], tuple[int, int, int]] = {}
    uniform = []
    for x0, y0, pw, ph, mx, my, scale, _ in parts:
        vec = per_mb.setdefault((x0 // 16, y0 // 16), (mx, my, scale))
        uniform.append((x0, y0, pw, ph, *vec, -1))
    field = rasterise(as_ffmpeg(uniform) if uniform else None, h, w, block)
    hb, wb = field.grid_shape
    n = 16 // block  # cells per macroblock side
    expected_valid = np.zeros((hb, wb), bool)
    for (bx, by), (mx, my, scale) in per_mb.items():
        rows, cols = slice(by * n, (by + 1) * n), slice(bx * n, (bx + 1) * n)
        if bx < 0 or by < 0 or by * n >= hb or bx * n >= wb:
            continue  # outside the frame's grid
        expected_valid[rows, cols] = True
        np.testing.assert_allclose(
            field.mv[rows, cols],
            np.broadcast_to(np.float32([mx / scale, my / scale]), field.mv[rows, cols].shape),
            atol=1e-5,
        )
    np.testing.assert_array_equal(field.valid, expected_valid)
