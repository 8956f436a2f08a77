"""Block motion fields: the one place that defines their convention.

Convention (every other module relies on it):

* A :class:`MotionField` for frame ``t`` describes motion relative to frame ``t - 1`` (the frame
  just before it in presentation order), whatever the codec's own reference structure was.
* It is a grid of cells of ``block`` x ``block`` pixels: ``Hb = ceil(H / block)`` rows and
  ``Wb = ceil(W / block)`` columns.  Cell ``(r, c)`` covers pixels ``y in [r*block, (r+1)*block)``,
  ``x in [c*block, (c+1)*block)``; its centre is ``((c + 0.5) * block, (r + 0.5) * block)`` in pixel
  coordinates where pixel ``(x, y)`` has its centre at ``(x + 0.5, y + 0.5)``.
* ``mv[r, c] = (dx, dy)`` in pixels, float32, x first.  It is a **backward (pull) offset**: the
  content at the cell centre ``p`` in frame ``t`` was at ``p + (dx, dy)`` in frame ``t - 1``.
  A camera panning right makes the scene move left in the image, so content now at ``p`` was
  further right before: ``dx > 0``.
  To pull frame ``t - 1`` (or its features) onto frame ``t``, sample ``t - 1`` at ``p + mv``.
  (The paper writes the forward warp as ``WARP(f, -mv)`` because its warp takes a push offset.)
* ``valid[r, c]`` is False where the stream gives no motion for the cell: intra-coded blocks,
  frame 0, and the cells of an I-frame.  ``mv`` is 0 there.  Downstream code must not trust the
  zero: the warp treats invalid cells as "no motion" (keeps the cached feature in place) unless
  told otherwise; see :mod:`bmvseg.warp`.

FFmpeg's exported vectors (``AV_FRAME_DATA_MOTION_VECTORS``) carry ``motion_x / motion_scale``,
the offset from the block in the current frame to its match in the reference frame, so a P-frame
that references the previous frame gives exactly ``mv`` above (this module does the rasterising).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MotionField:
    """Backward motion of one frame relative to the previous one (see the module docstring)."""

    mv: np.ndarray  # (Hb, Wb, 2) float32, (dx, dy) pixels, pull offset into frame t-1
    valid: np.ndarray  # (Hb, Wb) bool
    block: int = 16

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.valid.shape  # type: ignore[return-value]

    @classmethod
    def invalid(cls, height: int, width: int, block: int = 16) -> MotionField:
        """An all-invalid zero field (frame 0, I-frames without a fallback)."""
        hb, wb = grid_shape(height, width, block)
        return cls(np.zeros((hb, wb, 2), np.float32), np.zeros((hb, wb), bool), block)

    @classmethod
    def zeros(cls, height: int, width: int, block: int = 16) -> MotionField:
        """A valid zero field: the frame is known not to have moved."""
        hb, wb = grid_shape(height, width, block)
        return cls(np.zeros((hb, wb, 2), np.float32), np.ones((hb, wb), bool), block)


def grid_shape(height: int, width: int, block: int = 16) -> tuple[int, int]:
    """Rows and columns of the cell grid for a ``height`` x ``width`` frame."""
    return -(-height // block), -(-width // block)


def rasterise(vectors: np.ndarray | None, height: int, width: int, block: int = 16) -> MotionField:
    """Turn FFmpeg's exported motion vectors of one frame into a :class:`MotionField`.

    ``vectors`` is the structured array of ``side_data.to_ndarray()`` (fields ``source``, ``w``,
    ``h``, ``dst_x``, ``dst_y`` (the partition's centre), ``motion_x``, ``motion_y``,
    ``motion_scale``).  Only past-referencing vectors (``source < 0``) are used; the caller must
    know that the past reference is frame ``t - 1``.  Each partition fills the cells its area
    covers; a cell covered by several partitions (16x16 cells over 8x8 partitions) gets their
    area-weighted mean.  Cells no partition covers (intra blocks) stay invalid with ``mv = 0``.
    The sub-pel ``motion_x / motion_scale`` is used, never the rounded ``src_x``.  Partitions
    are assumed aligned to their own size, as in H.264 and MPEG-1/2/4 (a 16x8 partition starts
    on a multiple of 8 rows), so each lies in one cell or covers whole cells.
    """
    if block <= 0:
        raise ValueError(f"block must be positive, got {block}")
    field = MotionField.invalid(height, width, block)
    if vectors is None or len(vectors) == 0:
        return field
    v = vectors[vectors["source"] < 0]
    if len(v) == 0:
        return field
    hb, wb = field.grid_shape
    n = hb * wb
    pw = v["w"].astype(np.int64)
    ph = v["h"].astype(np.int64)
    x0 = v["dst_x"].astype(np.int64) - pw // 2
    y0 = v["dst_y"].astype(np.int64) - ph // 2
    scale = np.maximum(v["motion_scale"], 1).astype(np.float64)
    mx = v["motion_x"] / scale
    my = v["motion_y"] / scale
    if pw.max() <= block and ph.max() <= block:  # the usual 16-px grid: one cell per partition
        ix, iy = x0 // block, y0 // block
        ok = (ix >= 0) & (iy >= 0) & (ix < wb) & (iy < hb)
        flat = (iy * wb + ix)[ok]
        area = (pw * ph)[ok].astype(np.float64)
        weight = np.bincount(flat, weights=area, minlength=n)
        sx = np.bincount(flat, weights=mx[ok] * area, minlength=n)
        sy = np.bincount(flat, weights=my[ok] * area, minlength=n)
        return _finish(field, weight, sx, sy)
    flats, weights, wxs, wys = [], [], [], []
    # One pass per partition shape: a partition smaller than a cell adds its area to one cell,
    # a larger one adds a cell's area to each of the cells it spans.
    shapes = pw * 256 + ph
    for shape in np.unique(shapes).tolist():
        sw, sh = divmod(shape, 256)
        sel = shapes == shape
        area = float(min(sw, block) * min(sh, block))
        oy, ox = np.divmod(
            np.arange(max(sh // block, 1) * max(sw // block, 1)), max(sw // block, 1)
        )
        ix = (x0[sel] // block)[:, None] + ox
        iy = (y0[sel] // block)[:, None] + oy
        ok = (ix >= 0) & (iy >= 0) & (ix < wb) & (iy < hb)
        flats.append((iy * wb + ix)[ok])
        weights.append(np.full(flats[-1].size, area))
        wxs.append(np.broadcast_to((mx[sel] * area)[:, None], ok.shape)[ok])
        wys.append(np.broadcast_to((my[sel] * area)[:, None], ok.shape)[ok])
    flat = np.concatenate(flats)
    weight = np.bincount(flat, weights=np.concatenate(weights), minlength=n)
    sx = np.bincount(flat, weights=np.concatenate(wxs), minlength=n)
    sy = np.bincount(flat, weights=np.concatenate(wys), minlength=n)
    return _finish(field, weight, sx, sy)


def _finish(field: MotionField, weight: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> MotionField:
    """Area-weighted means into ``field``; cells with no area stay invalid and zero."""
    hb, wb = field.grid_shape
    valid = weight > 0
    denom = np.where(valid, weight, 1.0)
    field.mv[..., 0] = (sx / denom).reshape(hb, wb)
    field.mv[..., 1] = (sy / denom).reshape(hb, wb)
    field.valid[:] = valid.reshape(hb, wb)
    return field
