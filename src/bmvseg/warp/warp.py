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

from collections.abc import Sequence
from typing import NamedTuple

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
    (flow,) = field_to_flows(field, [(feat_hw, stride)], device)
    return flow


def field_to_flows(
    field: MotionField,
    grids: Sequence[tuple[tuple[int, int], int]],
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, ...]:
    """:func:`field_to_flow` on several ``(feat_hw, stride)`` grids, the field's invalid cells
    filled once for all of them."""
    mv = fill_invalid(field)
    hb, wb = mv.shape[:2]
    out = []
    for (h, w), stride in grids:
        rows = np.minimum(((np.arange(h) + 0.5) * stride // field.block).astype(int), hb - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * stride // field.block).astype(int), wb - 1)
        flow = mv[rows[:, None], cols[None, :]] / float(stride)
        out.append(torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))[None].to(device))
    return tuple(out)


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


class Sampler(NamedTuple):
    """A flow prepared for warping: per output pixel, four source rows and their weights.

    Built once per flow (:func:`sampler`; :class:`PreparedFlow` keeps it with its flow) and
    applied to any map of that size and batch (:func:`warp_with`), e.g. to every feature map
    carried along one frame's motion.
    """

    index: torch.Tensor  # (N * h * w, 4) rows of the (N * h * w, C) channels-last map
    weight: torch.Tensor  # (N * h * w, 4) bilinear weights
    shape: tuple[int, int, int]  # (N, h, w)


def sampler(flow: torch.Tensor, dtype: torch.dtype = torch.float32) -> Sampler:
    """Bilinear taps of the pull ``flow`` ``(N, 2, h, w)``, border-clamped like ``grid_sample``.

    Output pixel ``(i, j)`` samples ``(x, y) = (j + flow_x, i + flow_y)`` in index units (the
    convention's ``+ 0.5`` centres cancel), clamped to ``[0, w - 1] x [0, h - 1]``: the same
    coordinates as ``grid_sample(padding_mode="border", align_corners=False)`` computes
    through its normalised grid, without that grid's rounding (~``w * 2**-24`` pixels).
    """
    n, _, h, w = flow.shape
    dev = flow.device
    fx, fy = flow.to(torch.float32).unbind(1)
    x = (torch.arange(w, device=dev, dtype=torch.float32) + fx).clamp_(0, w - 1)
    y = (torch.arange(h, device=dev, dtype=torch.float32)[:, None] + fy).clamp_(0, h - 1)
    x0, y0 = x.floor(), y.floor()
    wx1, wy1 = x - x0, y - y0
    wx0, wy0 = 1 - wx1, 1 - wy1
    x0, y0 = x0.long(), y0.long()
    x1, y1 = (x0 + 1).clamp_max_(w - 1), (y0 + 1).clamp_max_(h - 1)  # weight 0 where clamped
    base = torch.arange(n, device=dev).view(n, 1, 1) * (h * w)
    r0, r1 = base + y0 * w, base + y1 * w
    index = torch.stack([r0 + x0, r0 + x1, r1 + x0, r1 + x1], -1).view(-1, 4)
    weight = torch.stack([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1], -1).view(-1, 4)
    return Sampler(index, weight.to(dtype), (n, h, w))


def warp_with(features: torch.Tensor, s: Sampler) -> torch.Tensor:
    """``features`` ``(N, C, h, w)`` warped by a prepared flow; the result is channels-last.

    One fused weighted gather of channel vectors (``embedding_bag``): several times cheaper
    than ``grid_sample`` on a CPU, and its output keeps the channels-last layout that the
    next warp and the task network's convolutions are fastest on (``grid_sample`` returns
    NCHW).  A channels-first input is converted first (a copy).
    """
    n, c, h, w = features.shape
    sn, sh, sw = s.shape
    if (sh, sw) != (h, w) or sn not in (1, n):
        raise ValueError(f"flow {s.shape} does not match features {tuple(features.shape)}")
    index, weight = s.index, s.weight
    if sn != n:  # one flow for a batch of maps
        index = (
            index.view(1, -1, 4) + torch.arange(n, device=index.device).view(n, 1, 1) * (h * w)
        ).view(-1, 4)
        weight = weight.repeat(n, 1)
    # (N*h*w, C) rows: a view of a channels-last map.  A channels-first map is converted
    # first (its permuted reshape would be a strided view, much slower to gather from).
    features = features.contiguous(memory_format=torch.channels_last)
    rows = features.permute(0, 2, 3, 1).reshape(n * h * w, c)
    out = F.embedding_bag(index, rows, per_sample_weights=weight.to(rows.dtype), mode="sum")
    return out.view(n, h, w, c).permute(0, 3, 1, 2)


def warp(features: torch.Tensor, flow: torch.Tensor | PreparedFlow) -> torch.Tensor:
    """Bilinearly sample ``features`` at pixel centres displaced by the pull ``flow``.

    ``features``: ``(N, C, h, w)``; ``flow``: ``(N or 1, 2, h, w)`` in feature pixels (x, y),
    or a :class:`PreparedFlow` (its sampler built once for every map it warps).
    Equal to ``grid_sample(bilinear, border, align_corners=False)`` within float rounding; a
    zero flow gives the features exactly (weights 1 and 0).  An all-zero flow on the CPU
    returns ``features`` itself; on a device that check would wait for the device, so there
    the flow is always applied (still exact).

    >>> f = torch.arange(6.0).view(1, 1, 2, 3)
    >>> warp(f, torch.zeros(1, 2, 2, 3)).equal(f)
    True
    """
    return prepared(flow).warp(features)


class PreparedFlow:
    """A pull flow and its :class:`Sampler`, built on the first warp and reused by every later
    one (a frame's flow warps each feature map of every chain that passes through it)."""

    def __init__(self, flow: torch.Tensor) -> None:
        if flow.ndim != 4 or flow.shape[1] != 2:
            raise ValueError(f"flow must be (N, 2, h, w), got {tuple(flow.shape)}")
        self.flow = flow
        self.static = flow.device.type == "cpu" and not flow.any()  # static content
        self._sampler: Sampler | None = None

    def warp(self, features: torch.Tensor) -> torch.Tensor:
        """``features`` pulled along this flow (see :func:`warp`)."""
        _, _, h, w = features.shape
        if self.flow.shape[-2:] != (h, w):
            raise ValueError(
                f"flow {tuple(self.flow.shape)} does not match features {tuple(features.shape)}"
            )
        if self.static:
            return features
        if self._sampler is None or self._sampler.weight.dtype != features.dtype:
            self._sampler = sampler(self.flow, features.dtype)
        return warp_with(features, self._sampler)


def prepared(flow: torch.Tensor | PreparedFlow) -> PreparedFlow:
    """``flow`` as a :class:`PreparedFlow` (itself if it already is one)."""
    return flow if isinstance(flow, PreparedFlow) else PreparedFlow(flow)


def warp_pair(
    a: torch.Tensor, flow_a: torch.Tensor, b: torch.Tensor, flow_b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp two maps with their own flows (inter-BMV's forward and backward step of a frame).

    Two calls, not one batched call: batching gains nothing on a CPU (the work is the same)
    and would first copy both maps into one tensor (see ``bench/kernel_costs.py``).
    """
    return warp(a, flow_a), warp(b, flow_b)


def compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """One pull flow equal to pulling with ``second`` then with ``first`` (``first`` applied last).

    If ``first`` maps frame ``a`` -> ``b`` (pulls ``a``'s content onto ``b``) and ``second``
    maps ``b`` -> ``c``, the result maps ``a`` -> ``c``: ``second(p) + first(p + second(p))``.
    Used to accumulate motion and warp once instead of step by step (less interpolation blur).
    """
    return second + warp(first, second)
