"""Fusing forward- and backward-warped keyframe features (paper Sec. 3.4.1).

For an intermediate frame at offset ``p`` in an interval of length ``n`` the forward map ``ff``
(warped from the previous keyframe) gets weight ``alpha = (n - p) / n`` and the backward map
``fb`` (warped from the next keyframe) gets ``1 - alpha = p / n``, so the map warped farther
counts less.  Operators:

* ``avg``: ``alpha * ff + (1 - alpha) * fb`` — the weighted average.  The weights sum to one, so
  the task network sees features at their usual scale (the unweighted mean of the already
  weighted maps would halve them).  Computed as ``torch.lerp(fb, ff, alpha)`` (``fb + alpha *
  (ff - fb)``): one pass over the two maps and one output, where ``ff * a + fb * b`` made two
  passes and a temporary map as large (``bench/kernel_costs.py --only fusion``); where the two
  maps agree (static content) the result is that map exactly.
* ``max``: ``max(alpha * ff, (1 - alpha) * fb)`` per element, exactly as the paper states it.
  Note this scales features by at most ``max(alpha, 1 - alpha)``; the benchmark shows the cost.
* ``conv``: a learned 1x1 convolution over ``[alpha * ff, (1 - alpha) * fb]`` (2C -> C), one per
  feature tensor, initialised to ``ff' + fb'`` (i.e. to ``avg``) and trained by
  ``bmvseg train-fusion`` with the feature and task networks frozen.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bmvseg.models.base import PinnedConv2d

FUSIONS = ("avg", "max", "conv")


def interval_weights(p: int, n: int) -> tuple[float, float]:
    """``(alpha, 1 - alpha)`` for offset ``p`` in an interval of ``n`` frames."""
    if not 0 <= p <= n or n <= 0:
        raise ValueError(f"offset {p} outside interval of {n}")
    return (n - p) / n, p / n


class ConvFusion(nn.Module):
    """One 1x1 convolution 2C -> C per feature tensor (thread-count independent, see
    :class:`~bmvseg.models.base.PinnedConv2d`)."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(PinnedConv2d(2 * c, c, kernel_size=1) for c in channels)
        with torch.no_grad():
            for conv, c in zip(self.convs, channels, strict=True):
                eye = torch.eye(c).view(c, c, 1, 1)
                conv.weight.copy_(torch.cat([eye, eye], dim=1))
                conv.bias.zero_()

    def forward(self, ff: torch.Tensor, fb: torch.Tensor, index: int = 0) -> torch.Tensor:
        return self.convs[index](torch.cat([ff, fb], dim=1))


def fuse(
    ff: Sequence[torch.Tensor],
    fb: Sequence[torch.Tensor],
    p: int,
    n: int,
    op: str = "avg",
    conv: ConvFusion | None = None,
) -> tuple[torch.Tensor, ...]:
    """Fuse two feature tuples for offset ``p`` of ``n`` with operator ``op``."""
    a, b = interval_weights(p, n)
    out = []
    for i, (f, g) in enumerate(zip(ff, fb, strict=True)):
        if op == "avg":
            out.append(torch.lerp(g, f, a))
        elif op == "max":
            out.append(torch.maximum(f * a, g * b))
        elif op == "conv":
            if conv is None:
                raise ValueError("conv fusion needs trained fusion weights")
            out.append(conv(f * a, g * b, i))
        else:
            raise ValueError(f"unknown fusion {op!r}; choose from {', '.join(FUSIONS)}")
    return tuple(out)
