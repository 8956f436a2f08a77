"""Measuring a network cut by :func:`~bmvseg.models.split.split_module`: its strides and
class count (one forward pass on :data:`PROBE`) and the multiple its input sides must have."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from bmvseg.errors import BmvsegError
from bmvseg.models.base import check_output_conventions

if TYPE_CHECKING:
    from bmvseg.models.split import SplitModel

PROBE = (256, 320)  # (H, W) of the probe image: a multiple of strides up to 64
MULTIPLES = (1, 2, 4, 8, 16, 32, 64)  # input multiples tried, smallest first


def probe(model: SplitModel, net: str, void_index: int | None, class_map: Any) -> None:
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


def probe_size(m: int) -> tuple[int, int]:
    """An image about 100x140 whose sides are odd multiples of ``m``."""
    odd = [-(-side // m) | 1 for side in (100, 140)]
    return (m * odd[0], m * odd[1])


def measure_multiple(model: SplitModel) -> int:
    """The smallest of :data:`MULTIPLES` whose probe image (:func:`probe_size`) runs through
    the network with features of a whole or rounded stride (the largest when none does)."""
    p = next(model.parameters(), None)
    device = p.device if p is not None else torch.device("cpu")
    for m in MULTIPLES:
        hw = probe_size(m)
        try:
            with torch.no_grad():
                feats = model.features(torch.zeros(1, 3, *hw, device=device))
                sizes_ok = all(
                    f.shape[-2] in (hw[0] // s, -(-hw[0] // s))
                    and f.shape[-1] in (hw[1] // s, -(-hw[1] // s))
                    for f, s in zip(feats, model.strides, strict=True)
                )
                if sizes_ok:
                    model._run(model.task_net, feats, hw)
                    return m
        except (BmvsegError, RuntimeError):
            continue
    return MULTIPLES[-1]
