"""Moving feature tuples along motion: the shared step of prop-BMV, inter-BMV and prop-flow."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bmvseg.models.base import Features
from bmvseg.video.motion import MotionField
from bmvseg.warp import backward_flow, compose, dense_to_flow, field_to_flow, warp

Flows = tuple[torch.Tensor, ...]  # one flow per feature tensor, at that tensor's resolution


def field_flows(field: MotionField, feats: Features, strides: Sequence[int]) -> Flows:
    """The block motion field as a pull flow for every feature tensor (each at its stride)."""
    return tuple(
        field_to_flow(field, tuple(f.shape[-2:]), s, f.device)
        for f, s in zip(feats, strides, strict=True)
    )


def dense_flows(flow_px: np.ndarray, feats: Features, strides: Sequence[int]) -> Flows:
    """A dense image-resolution pull flow (optical flow) for every feature tensor."""
    return tuple(
        dense_to_flow(flow_px, tuple(f.shape[-2:]), s, f.device)
        for f, s in zip(feats, strides, strict=True)
    )


def reverse(flows: Flows) -> Flows:
    """Flows that take frame t's features back to t-1 (see :func:`bmvseg.warp.backward_flow`)."""
    return tuple(backward_flow(f) for f in flows)


def warp_features(feats: Features, flows: Flows) -> Features:
    return tuple(warp(f, g) for f, g in zip(feats, flows, strict=True))


class Chain:
    """Features carried along successive flows from a starting (key) frame.

    Chained warping resamples the previous result at every step; with ``accumulate`` the flows
    are composed instead and the starting features warped once per step, which avoids repeated
    bilinear blurring at the cost of one flow composition per step.
    """

    def __init__(self, feats: Features, accumulate: bool = False) -> None:
        self.start = feats
        self.current = feats
        self.accumulate = accumulate
        self.total: Flows | None = None

    def step(self, flows: Flows) -> Features:
        if not self.accumulate:
            self.current = warp_features(self.current, flows)
            return self.current
        if self.total is None:
            self.total = flows
        else:
            self.total = tuple(compose(t, s) for t, s in zip(self.total, flows, strict=True))
        self.current = warp_features(self.start, self.total)
        return self.current


def propagate(feats: Features, steps: Sequence[Flows], accumulate: bool = False) -> list[Features]:
    """Warp ``feats`` through ``steps`` one after another: the paper's PROPAGATE (Alg. 2).

    Returns the features after each step (not including ``feats`` itself).
    """
    chain = Chain(feats, accumulate)
    return [chain.step(s) for s in steps]
