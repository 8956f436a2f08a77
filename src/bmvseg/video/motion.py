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
