"""Moving feature tuples along motion: the shared step of prop-BMV, inter-BMV and prop-flow.

Frame ``j``'s motion field maps frame ``j`` back to frame ``j - 1`` (a pull flow, see
:mod:`bmvseg.warp.warp`).  Carrying features of an *origin* frame ``o`` to a *target* frame ``t``:

* forward (``t > o``): warp by the flows of frames ``o + 1, ..., t`` in turn (Alg. 1's chain);
* backward (``t < o``): warp by the reversed flows of frames ``o, o - 1, ..., t + 1`` in turn,
  each step undoing the motion of the later frame (Alg. 2's backward chain).

:class:`Carrier` does both, once per (origin, target): the streaming engine keeps only the latest
result of each origin (memory of one map per chain), the accuracy sweep keeps them all so that
every keyframe interval and phase that needs a chain shares it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from bmvseg.models.base import Features
from bmvseg.video.motion import MotionField
from bmvseg.warp import (
    PreparedFlow,
    backward_flow,
    compose,
    dense_to_flow,
    field_to_flows,
    prepared,
)

# One flow per feature tensor, at that tensor's resolution; each prepared once for all the warps
# through it (raw ``(1, 2, h, w)`` tensors are accepted wherever Flows are read).
Flows = tuple[PreparedFlow | torch.Tensor, ...]


def flows_prev_to_cur(field: MotionField, feats: Features, strides: Sequence[int]) -> Flows:
    """Frame t's block motion field as flows that carry frame t-1's features to frame t
    (pull flows, one per feature tensor at its stride)."""
    grids = [(tuple(f.shape[-2:]), s) for f, s in zip(feats, strides, strict=True)]
    return tuple(PreparedFlow(g) for g in field_to_flows(field, grids, feats[0].device))


def flows_key_to_cur(flow_px: np.ndarray, feats: Features, strides: Sequence[int]) -> Flows:
    """A dense image-resolution optical flow from the current image to the keyframe's, as
    flows that carry the keyframe's features to the current frame (one per feature tensor)."""
    return tuple(
        PreparedFlow(dense_to_flow(flow_px, tuple(f.shape[-2:]), s, f.device))
        for f, s in zip(feats, strides, strict=True)
    )


def flows_cur_to_prev(flows: Flows) -> Flows:
    """Frame t's prev->cur flows reversed: they carry frame t's features back to t-1
    (see :func:`bmvseg.warp.backward_flow` for the approximation)."""
    return tuple(PreparedFlow(backward_flow(prepared(f).flow)) for f in flows)


def warp_features(feats: Features, flows: Flows) -> Features:
    """Each feature tensor pulled along its own flow."""
    return tuple(prepared(g).warp(f) for f, g in zip(feats, flows, strict=True))


class Carrier:
    """Features of an origin frame carried to other frames along the frames' motion.

    ``flows_of(j, like)`` gives frame ``j``'s motion field as flows on the grids of the feature
    tuple ``like``.  Chained warping resamples the previous result at every step; with
    ``accumulate`` the flows are composed instead and the origin's features warped once per
    target, which avoids repeated bilinear blurring at the cost of one composition per step.
    With ``memo`` every (origin, target) result is kept until :meth:`forget_before`; without it
    only the latest result of each origin, so calls must walk away from the origin one frame at
    a time to stay one warp each.
    """

    def __init__(
        self,
        flows_of: Callable[[int, Features], Flows],
        *,
        accumulate: bool = False,
        memo: bool = False,
    ) -> None:
        self.flows_of = flows_of
        self.accumulate = accumulate
        self.memo = memo
        # (origin, target) -> (features at target, composed flow origin -> target or None)
        self._done: dict[tuple[int, int], tuple[Features, Flows | None]] = {}
        self._reversed: dict[int, Flows] = {}

    def carry(self, origin: int, feats: Features, target: int) -> Features:
        """``feats`` of frame ``origin`` carried to frame ``target`` (either direction)."""
        if target == origin:
            return feats
        step = 1 if target > origin else -1
        t = target
        while t != origin and (origin, t) not in self._done:
            t -= step
        current, total = (feats, None) if t == origin else self._done[origin, t]
        while t != target:
            flows = self.flows_of(t + 1, feats) if step > 0 else self._reverse(t, feats)
            t += step
            if self.accumulate:
                total = flows if total is None else tuple(
                    PreparedFlow(compose(prepared(a).flow, prepared(b).flow))
                    for a, b in zip(total, flows, strict=True)
                )
                current = warp_features(feats, total)
            else:
                current = warp_features(current, flows)
            if not self.memo:
                self._done.pop((origin, t - step), None)
            self._done[origin, t] = (current, total)
        return current

    def _reverse(self, j: int, like: Features) -> Flows:
        """Reversed flows of frame ``j``: frame ``j``'s features taken back to ``j - 1``."""
        if j not in self._reversed:
            self._reversed[j] = flows_cur_to_prev(self.flows_of(j, like))
            if not self.memo:
                for old in [i for i in self._reversed if i != j]:
                    del self._reversed[old]
        return self._reversed[j]

    def forget_before(self, index: int) -> None:
        """Drop every chain whose origin, and every flow whose frame, lies before ``index``."""
        for key in [k for k in self._done if k[0] < index]:
            del self._done[key]
        for j in [j for j in self._reversed if j < index]:
            del self._reversed[j]


def propagate(feats: Features, steps: Sequence[Flows], accumulate: bool = False) -> list[Features]:
    """Warp ``feats`` through ``steps`` one after another: the paper's PROPAGATE (Alg. 2).

    Returns the features after each step (not including ``feats`` itself).
    """
    carrier = Carrier(lambda j, like: steps[j - 1], accumulate=accumulate)
    return [carrier.carry(0, feats, t) for t in range(1, len(steps) + 1)]
