"""The overlay drawn on the decoded YUV planes looks like the RGB path's, frame by frame.

Real H.264 (libx264) decoded by PyAV; both overlays are encoded, decoded back and compared in
RGB: they may differ only by rounding and the 4:2:0 chroma at class edges.
"""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from bmvseg.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, ClassSet, overlay_frame
from bmvseg.output.frames import OverlayEncoder
from bmvseg.output.yuv_overlay import YuvOverlay, planes_of, rgb_to_i420, yuv_colours
from bmvseg.schemes.base import FrameResult
from bmvseg.video.encode import encode_video
from bmvseg.video.frame import FULL_RANGE, Frame
from bmvseg.video.reader import VideoReader


def test_palette_colours_convert_as_the_encoder_converts() -> None:
    """White, black and each palette colour: the single-pixel conversion equals that of a
    flat picture of the colour (what the encoder does to an RGB frame)."""
    colours = np.concatenate([[[255, 255, 255], [0, 0, 0]], CITYSCAPES_PALETTE]).astype(np.uint8)
    yuv = yuv_colours(colours)
    assert tuple(yuv[0]) == (235, 128, 128) and tuple(yuv[1]) == (16, 128, 128)
    for rgb, want in zip(colours, yuv, strict=True):
        flat = rgb_to_i420(np.broadcast_to(rgb, (16, 16, 3)))
        assert (flat[0, 0], flat[16, 0], flat[20, 0]) == tuple(want)


def _result(frame, labels, keyframe: bool) -> FrameResult:
    """The engine's result for ``frame`` with these labels (a keyframe has a reason)."""
    return FrameResult(frame.index, frame.time, labels, 0, frame,
                       reasons=("fixed",) if keyframe else ())  # fmt: skip


def _stripes(h: int, w: int, t: int) -> np.ndarray:
    """A textured picture that moves."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([(x * 3 + t * 5) % 256, (y * 2 + x) % 256, (y * 4 - t * 3) % 256], 2).astype(
        np.uint8
    )


def _overlays(path, classes: ClassSet) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The file's overlay through the YUV path (the encoder) and through the RGB path."""
    yuv_buf, rgb_buf = io.BytesIO(), io.BytesIO()
    yuv_enc = OverlayEncoder(yuv_buf, 25.0, classes)
    rgb_enc = OverlayEncoder(rgb_buf, 25.0, classes)
    legend = classes.legend()
    rng = np.random.default_rng(0)
    with VideoReader(path) as reader:
        for frame in reader.frames():
            assert frame.i420() is not None
            h, w = frame.image.shape[:2]
            blocks = rng.integers(0, 19, (-(-h // 8), -(-w // 8)))
            labels = np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:h, :w].astype(np.uint8)
            labels[:4, :4] = 255  # void: black
            res = _result(frame, labels, keyframe=frame.index % 3 == 0)
            yuv_enc.add(res)
            rgb_enc._writer.write(
                overlay_frame(frame.image, labels, classes.palette, res.keyframe, legend),
                time=frame.time,
            )
    yuv_enc.close()
    rgb_enc.close()
    decoded = []
    for buf in (yuv_buf, rgb_buf):
        buf.seek(0)
        with av.open(buf) as c:
            decoded.append([f.to_ndarray(format="rgb24").astype(np.int16)
                            for f in c.decode(video=0)])  # fmt: skip
    return decoded[0], decoded[1]


@pytest.mark.parametrize("size", [(96, 128), (100, 176)])
def test_yuv_overlay_matches_the_rgb_overlay(tmp_path, size) -> None:
    h, w = size
    path = tmp_path / "clip.mp4"
    encode_video([_stripes(h, w, t) for t in range(6)], path, fps=25.0)
    classes = ClassSet(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)
    yuv, rgb = _overlays(path, classes)
    assert len(yuv) == len(rgb) == 6
    for a, b in zip(yuv, rgb, strict=True):
        diff = np.abs(a - b)
        # Two lossy encodes of the same picture, one colour path apart: close on average, and
        # the legend and border (drawn from the same strip) as close as the rest.
        assert diff.mean() < 4.0, diff.mean()
        assert np.percentile(diff, 99) < 40


def _picture(rgb: np.ndarray, fmt: str, full_range: bool = False) -> av.VideoFrame:
    pic = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=fmt)
    if full_range:
        pic.color_range = FULL_RANGE
    return pic


@pytest.mark.parametrize(
    "size,fmt,full_range",
    [((63, 81), "yuv420p", False), ((64, 80), "yuv444p", False), ((64, 80), "yuv420p", True)],
)
def test_pictures_the_yuv_path_cannot_take_keep_the_rgb_path(size, fmt, full_range) -> None:
    """Odd sides, another chroma layout, JPEG range: no I420 planes; the overlay still has every
    frame, padded to even sides as before."""
    h, w = size
    frames = [Frame(i, i / 25, "P", picture=_picture(_stripes(h, w, i), fmt, full_range))
              for i in range(3)]  # fmt: skip
    assert all(f.i420() is None for f in frames)
    buf = io.BytesIO()
    enc = OverlayEncoder(buf, 25.0, ClassSet(CITYSCAPES_CLASSES, CITYSCAPES_PALETTE))
    for f in frames:
        enc.add(_result(f, np.zeros((h, w), np.uint8), keyframe=f.index == 0))
    enc.close()
    buf.seek(0)
    with av.open(buf) as c:
        got = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(got) == 3 and got[0].shape == (h + h % 2, w + w % 2, 3)


def test_keyframe_border_is_white_and_only_on_keyframes() -> None:
    palette = CITYSCAPES_PALETTE
    draw = YuvOverlay(palette, legend=None)
    i420 = rgb_to_i420(np.zeros((48, 64, 3), np.uint8))
    labels = np.zeros((48, 64), np.uint8)
    key, other = draw.draw(i420, labels, True), draw.draw(i420, labels, False)
    assert (key[0, :] == 235).all() and (key[:48, -1] == 235).all()
    u, v = planes_of(key)[1:]
    assert (u[0] == 128).all() and (v[:, 0] == 128).all()  # white's chroma on the border
    assert np.array_equal(key[10:38, 10:54], other[10:38, 10:54])
    assert (other[0, :] < 235).all()
