"""Measuring a network cut by :func:`~bmvseg.models.split.split_module`: its strides and
class count (one forward pass on :data:`PROBE`) and the multiple its input sides must have."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch

from bmvseg.errors import BmvsegError
from bmvseg.models.base import Features, check_output_conventions


class ProbedModel(Protocol):
    """What the probe reads of :class:`bmvseg.models.split.SplitModel` (named here, not imported:
    the split module imports this one)."""

    cut: Any
    task_net: torch.nn.Module
    strides: list[int]
    void_index: int | None
    class_map: Any
    num_classes: int

    def parameters(self) -> Any: ...

    def features(self, image: torch.Tensor) -> Features: ...

    def _run(self, net: Any, feats: Features, out_size: Any) -> torch.Tensor: ...

PROBE = (256, 320)  # (H, W) of the probe image: a multiple of strides up to 64
MULTIPLES = (1, 2, 4, 8, 16, 32, 64)  # input multiples tried, smallest first


def probe(model: ProbedModel, net: str, void_index: int | None, class_map: Any) -> None:
    """Measure the strides and the class count with one forward pass on a blank image."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    x = torch.zeros(1, 3, *PROBE, device=device)
    with torch.no_grad():
        feats = model.features(x)
        for name, f in zip(model.cut, feats, strict=True):
            if not isinstance(f, torch.Tensor) or f.ndim != 4:
                kind = type(f).__name__ if not isinstance(f, torch.Tensor) else f"{f.ndim}-D tensor"
                raise BmvsegError(
                    f"cut {name!r} of {net} returns a {kind}, not an (N, C, H, W) feature map; "
                    "cut at a submodule that returns one"
                )
        strides = []
        for name, f in zip(model.cut, feats, strict=True):
            sh, sw = PROBE[0] / f.shape[-2], PROBE[1] / f.shape[-1]
            if sh != sw or sh != int(sh) or sh < 1:
                raise BmvsegError(
                    f"cut {name!r} of {net} gives a {f.shape[-2]}x{f.shape[-1]} map for a "
                    f"{PROBE[0]}x{PROBE[1]} image: not a whole stride of the input"
                )
            strides.append(int(sh))
        model.strides = tuple(strides)
        raw = model._run(model.task_net, feats, PROBE)
    if raw.ndim != 4:
        raise BmvsegError(f"{net} returns a {raw.ndim}-D output, not (N, classes, H, W) scores")
    model.void_index = void_index
    model.class_map = tuple(class_map) if class_map is not None else None
    model.num_classes = check_output_conventions(raw.shape[1], void_index, model.class_map)


def with_strides(m: int, strides: Sequence[int]) -> int:
    """``m`` made a multiple of every stride (1 stays 1: no padding needed)."""
    return m if m == 1 else math.lcm(m, *strides)


def probe_sizes(m: int) -> list[tuple[int, int]]:
    """Images whose sides are ``m`` and ``-m`` modulo 64 (:data:`MULTIPLES`' largest), each
    side both: the residues that break a network needing a larger multiple.

    A decoder that meets an upsampled coarse map with a finer one fails at level ``2**a`` when
    its sizes round up and the side modulo ``2**(a+1)`` is in ``1..2**a`` (side = ``m`` modulo
    64 hits every level ``2**a >= m``), or when they round down and it is in
    ``2**a..2**(a+1)-1`` (side = ``-m`` modulo 64 hits those).
    """
    a, b = 128 + m % 64, 192 - m % 64
    return [(a, b), (b, a)]


def _runs(model: ProbedModel, hw: tuple[int, int], device: torch.device) -> bool:
    """True when an ``hw`` image runs through the network, with features of a whole (rounded
    up or down) stride."""
    try:
        with torch.no_grad():
            feats = model.features(torch.zeros(1, 3, *hw, device=device))
            for f, s in zip(feats, model.strides, strict=True):
                if f.shape[-2] not in (hw[0] // s, -(-hw[0] // s)):
                    return False
                if f.shape[-1] not in (hw[1] // s, -(-hw[1] // s)):
                    return False
            model._run(model.task_net, feats, hw)
    except (BmvsegError, RuntimeError):
        return False
    return True


def measure_multiple(model: ProbedModel) -> int:
    """The smallest of :data:`MULTIPLES` all of whose :func:`probe_sizes` run through the
    network (the largest when none does)."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    for m in MULTIPLES[:-1]:
        if all(_runs(model, hw, device) for hw in probe_sizes(m)):
            return m
    return MULTIPLES[-1]
