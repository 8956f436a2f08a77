"""Clips with exactly known motion, for tests, the demo and the motion benchmark.

A smooth random texture (band-limited noise: block matching needs structure at the block scale,
and aliasing-free texture makes sub-pixel shifts exact under bilinear/bicubic resampling) is
moved by a known warp with ``cv2.remap``.  The returned ``true_flow[t]`` follows the motion
convention of :mod:`bmvseg.video.motion`: a backward pull offset, the content at pixel centre
``p`` of frame ``t`` was at ``p + true_flow[t][p]`` in frame ``t - 1`` (``true_flow[0]`` is 0).
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Kind = Literal["translate", "zoom", "object"]


def smooth_texture(height: int, width: int, seed: int = 0, scale: float = 4.0) -> np.ndarray:
    """(H, W, 3) uint8 RGB band-limited noise with features about ``scale`` pixels wide."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(2, int(height / scale) + 2), max(2, int(width / scale) + 2), 3))
    tex = cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    tex = cv2.GaussianBlur(tex, (0, 0), scale / 4)
    lo, hi = np.percentile(tex, [1, 99])
    return np.clip((tex - lo) / (hi - lo) * 235 + 10, 0, 255).astype(np.uint8)


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def _sample(texture: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(
        texture, map_x, map_y, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101
    )


def moving_texture_clip(
    kind: Kind,
    height: int,
    width: int,
    frames: int,
    seed: int = 0,
    speed: float = 1.3,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (H, W, 3) uint8 RGB and the true backward flow (H, W, 2) float32 of each.

    ``translate``: the whole texture moves by ``speed`` px/frame right and ``0.6 * speed`` down.
    ``zoom``: the camera zooms in about the centre by ``speed`` percent per frame.
    ``object``: a textured square (a third of the frame) moves ``speed`` px/frame right and
    ``0.5 * speed`` up over a static textured background; ``true_flow`` is 0 on the background
    (including where the object uncovered it, which has no true correspondence in ``t - 1``).
    """
    if kind not in ("translate", "zoom", "object"):
        raise ValueError(f"unknown clip kind {kind!r}: use translate, zoom or object")
    margin = int(np.ceil(abs(speed) * frames)) + 8
    big = smooth_texture(height + 2 * margin, width + 2 * margin, seed)
    xs, ys = _grid(height, width)
    out: list[np.ndarray] = []
    flows: list[np.ndarray] = []
    if kind == "translate":
        vx, vy = speed, 0.6 * speed
        for t in range(frames):
            # frame t shows texture at (x - vx t, y - vy t): content moves by (+vx, +vy)/frame.
            out.append(_sample(big, xs + margin - vx * t, ys + margin - vy * t))
            flow = np.empty((height, width, 2), np.float32)
            flow[..., 0], flow[..., 1] = -vx, -vy
            flows.append(flow if t else np.zeros_like(flow))
    elif kind == "zoom":
        cx, cy = width / 2, height / 2
        rate = 1 + speed / 100
        px, py = xs + 0.5 - cx, ys + 0.5 - cy  # pixel centres about the zoom centre
        for t in range(frames):
            s = rate**t  # frame t magnifies the texture by s about the centre
            out.append(_sample(big, px / s + cx + margin - 0.5, py / s + cy + margin - 0.5))
            flow = np.stack([px / rate - px, py / rate - py], -1).astype(np.float32)
            flows.append(flow if t else np.zeros_like(flow))
    else:
        background = big[margin : margin + height, margin : margin + width]
        obj = smooth_texture(height, width, seed + 1, scale=3.0)
        side = max(8, min(height, width) // 3)
        vx, vy = speed, -0.5 * speed
        x0, y0 = width / 4, height / 2
        for t in range(frames):
            ox, oy = x0 + vx * t, y0 + vy * t
            frame = background.copy()
            inside = (xs + 0.5 >= ox) & (xs + 0.5 < ox + side) & (ys + 0.5 >= oy)
            inside &= ys + 0.5 < oy + side
            moved = _sample(obj, xs - ox, ys - oy)
            frame[inside] = moved[inside]
            out.append(frame)
            flow = np.zeros((height, width, 2), np.float32)
            if t:
                flow[inside] = (-vx, -vy)
            flows.append(flow)
    return out, flows


def block_flow(flow: np.ndarray, block: int = 16) -> np.ndarray:
    """The true flow at each cell centre of a ``block`` grid (the motion convention's sample)."""
    height, width = flow.shape[:2]
    hb, wb = -(-height // block), -(-width // block)
    cy = np.minimum((np.arange(hb) + 0.5) * block, height - 0.5)
    cx = np.minimum((np.arange(wb) + 0.5) * block, width - 0.5)
    map_x, map_y = np.meshgrid(cx - 0.5, cy - 0.5)
    return np.stack(
        [
            cv2.remap(
                flow[..., i],
                map_x.astype(np.float32),
                map_y.astype(np.float32),
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            for i in range(2)
        ],
        -1,
    )
