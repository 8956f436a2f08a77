"""Warping feature maps with motion fields (the bilinear sampler of Jaderberg et al.).

Convention (owned here; :mod:`bmvseg.video.motion` owns the motion-field one):

* Features are ``(N, C, h, w)`` tensors at stride ``s`` of an ``H x W`` image: feature pixel
  ``(i, j)`` summarises the image region whose centre is ``((j + 0.5) * s, (i + 0.5) * s)``.
* A *flow* is a ``(N, 2, h, w)`` float tensor in **feature pixels**, channel 0 = x, channel 1 = y,
  and is a **pull** offset: ``out[..., i, j] = src sampled at (j + 0.5 + flow_x, i + 0.5 + flow_y)``
  (pixel centres at half-integers, ``grid_sample(align_corners=False)``).
* Warping frame ``t - 1``'s features onto frame ``t`` uses the frame's motion field as is
  (``flow = mv[t] / s``); the paper writes this ``WARP(f, -mv[t])`` because its operator takes a
  push offset.
* Samples that fall outside the map take the nearest border feature (``padding_mode="border"``):
  content entering the frame gets the features of the edge it enters through, which keeps its
  class plausible, where zeros would give an arbitrary class.
* Invalid motion cells (intra-coded blocks, frames with no vectors) get the mean vector of their
  valid 8-neighbours, or zero motion (features stay in place) when none is valid.

Backward warping (next keyframe -> earlier frame) has no vectors of its own; see
:func:`backward_flow` for the approximation used.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bmvseg.video.motion import MotionField


def fill_invalid(field: MotionField) -> np.ndarray:
    """The field's vectors with invalid cells replaced by their valid neighbours' mean (or 0)."""
    mv = np.where(field.valid[..., None], field.mv, 0.0).astype(np.float32)
    if field.valid.all() or not field.valid.any():
        return mv
    weight = field.valid.astype(np.float32)
    pad_mv = np.pad(mv, ((1, 1), (1, 1), (0, 0)))
    pad_w = np.pad(weight, 1)
    hb, wb = weight.shape
    total = np.zeros_like(mv)
    count = np.zeros_like(weight)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            total += pad_mv[dy : dy + hb, dx : dx + wb]
            count += pad_w[dy : dy + hb, dx : dx + wb]
    filled = np.divide(total, count[..., None], out=np.zeros_like(mv), where=count[..., None] > 0)
    return np.where(field.valid[..., None], mv, filled)


def field_to_flow(
    field: MotionField, feat_hw: tuple[int, int], stride: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Resample a block motion field onto a feature grid: ``(1, 2, h, w)`` flow in feature pixels.

    Each feature pixel takes the vector of the motion cell that contains its centre (block
    motion is piecewise constant), divided by the stride to convert image pixels to feature
    pixels.
    """
    h, w = feat_hw
    mv = fill_invalid(field)
    hb, wb = mv.shape[:2]
    rows = np.minimum(((np.arange(h) + 0.5) * stride // field.block).astype(int), hb - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * stride // field.block).astype(int), wb - 1)
    flow = mv[rows[:, None], cols[None, :]] / float(stride)
    return torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))[None].to(device)


def dense_to_flow(
    flow_px: np.ndarray, feat_hw: tuple[int, int], stride: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A dense ``(H, W, 2)`` pull flow in image pixels (e.g. optical flow) -> feature-grid flow."""
    import cv2

    h, w = feat_hw
    H, W = flow_px.shape[:2]
    # Area-average onto the stride grid (pad the image grid up to h*s x w*s first).
    padded = np.pad(flow_px, ((0, h * stride - H), (0, w * stride - W), (0, 0)), mode="edge")
    small = cv2.resize(padded, (w, h), interpolation=cv2.INTER_AREA) / float(stride)
    return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1)))[None].to(device)


def backward_flow(forward: torch.Tensor) -> torch.Tensor:
    """Pull flow taking frame ``t``'s features back to frame ``t - 1`` from ``t``'s pull flow.

    Approximation: the motion field of frame ``t`` says content at ``p`` in ``t`` came from
    ``p + m(p)`` in ``t - 1``.  Inverting it exactly needs ``m`` at the unknown point ``p``; we
    assume motion is locally constant and use ``m`` at the same location, so content at ``q`` in
    ``t - 1`` is pulled from ``q - m(q)`` in ``t``.  Exact for translations, first-order
    accurate for smooth motion, wrong across motion boundaries (as block vectors are anyway).
    """
    return -forward


_GRID_CACHE: dict[tuple, torch.Tensor] = {}


def _base_grid(h: int, w: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    key = (h, w, device, dtype)
    grid = _GRID_CACHE.get(key)
    if grid is None:
        ys = (torch.arange(h, device=device, dtype=dtype) + 0.5) * (2.0 / h) - 1.0
        xs = (torch.arange(w, device=device, dtype=dtype) + 0.5) * (2.0 / w) - 1.0
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (1, h, w, 2)
        _GRID_CACHE[key] = grid
    return grid


def warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinearly sample ``features`` at pixel centres displaced by the pull ``flow``.

    ``features``: ``(N, C, h, w)``; ``flow``: ``(N or 1, 2, h, w)`` in feature pixels (x, y).

    >>> f = torch.arange(6.0).view(1, 1, 2, 3)
    >>> warp(f, torch.zeros(1, 2, 2, 3)).equal(f)
    True
    """
    n, _, h, w = features.shape
    if flow.shape[-2:] != (h, w) or flow.shape[1] != 2:
        raise ValueError(
            f"flow {tuple(flow.shape)} does not match features {tuple(features.shape)}"
        )
    if not flow.any():
        return features  # exact identity: no resampling round-off on static content
    flow = flow.to(features.dtype)
    scale = torch.tensor([2.0 / w, 2.0 / h], device=flow.device, dtype=flow.dtype)
    grid = _base_grid(h, w, features.device, features.dtype) + flow.permute(0, 2, 3, 1) * scale
    if grid.shape[0] != n:
        grid = grid.expand(n, -1, -1, -1)
    return F.grid_sample(
        features, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """One pull flow equal to pulling with ``second`` then with ``first`` (``first`` applied last).

    If ``first`` maps frame ``a`` -> ``b`` (pulls ``a``'s content onto ``b``) and ``second``
    maps ``b`` -> ``c``, the result maps ``a`` -> ``c``: ``second(p) + first(p + second(p))``.
    Used to accumulate motion and warp once instead of step by step (less interpolation blur).
    """
    return second + warp(first, second)
