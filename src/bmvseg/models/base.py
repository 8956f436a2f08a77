"""The feature-network / task-network split every bmvseg model follows (paper Sec. 3.1).

``features`` is the expensive part run only on keyframes; ``task`` is the cheap part run on every
frame, on features that are either fresh or warped.  Features are a tuple of tensors, each
``(N, C_i, H / s_i, W / s_i)`` (rounded up) at stride ``s_i = strides[i]``, so the warp can scale a
motion field to each of them.  Images reach ``features`` already normalised by ``preprocess``.

Most task networks end in "class scores at the feature resolution, then a bilinear upsample":
such a model implements ``logits(feats)`` (low resolution, ``(N, K, h, w)``) and inherits
``task`` = bilinear upsample of ``logits`` (align_corners=False), so callers that want the
low-resolution scores (a cheaper arg-max) can ask for them.  A model whose task is not that
overrides ``task`` and leaves ``logits`` unimplemented; ``has_lowres_logits`` tells which.

Conventions are declared as attributes, not coded in ``features``:

- input: ``channel_order`` ("RGB" or "BGR"), ``scale`` (1/255 or 1: what multiplies the uint8
  pixel), then ``(x - mean) / std`` per channel, in the model's channel order.  ``preprocess``
  honours them.
- output: ``void_index`` (a model output that is not a class: ignore/void/background-to-drop)
  and ``class_map`` (model output i -> reported class ``class_map[i]``, None = drop).  They are
  applied by :meth:`SegmentationModel.map_outputs`, which every ``logits`` / ``task`` of a model
  that declares them calls last (the models in this package do): the void output is *removed*,
  not set to -inf, and several outputs mapped to one class are merged by their maximum.  So
  ``num_classes``, ``class_names`` and ``palette`` always describe the reported classes, the
  arg-max can never pick void, and every label id is < ``num_classes``.  A reported class that
  no output maps to gets -inf (never predicted).

Input sizes: ``input_multiple`` is the number every side of the image given to ``features``
must be a multiple of (1: any size; otherwise a multiple of every stride).  ``preprocess`` pads
the bottom and right edges up to it (``pad_mode``: "replicate" or "reflect") and ``task``
crops its output back to the frame's size, so the feature maps (and the warps on them) cover
the padded image and the labels the frame; the lean arg-max path does the same with
:meth:`SegmentationModel.padded_size`.  Padding only the bottom and right keeps feature pixel
``(i, j)`` over the same image region as without padding.

Labels do not depend on the number of torch threads.  PyTorch picks the CPU convolution kernel
by the thread count: a 1x1 convolution (stride 1, batch < 16) runs oneDNN's kernel with two or
more threads and the im2col + GEMM one with a single thread, and the two round differently
(the shipped model's 1x1 classifier moved a label by one pixel on a few real frames).  In eval
mode every plain ``nn.Conv2d`` of a model runs oneDNN's kernel directly
(:func:`pin_conv_kernel`), whose results are the same at 1, 2 and 4 threads (as measured,
``tests/test_determinism.py``) and the same as multi-threaded PyTorch gives; it is also faster
than the single-thread GEMM path.  The modules are changed in place, so a network cut by
:func:`~bmvseg.models.split.split_module` (which shares them) runs pinned too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Features = tuple[torch.Tensor, ...]
CHANNEL_ORDERS = ("RGB", "BGR")
PAD_MODES = ("replicate", "reflect")


def default_palette(names: Sequence[str]) -> np.ndarray:
    """Colours for classes with none declared: CamVid's or Cityscapes' own for their class
    sets (names compared case-insensitively), else the PASCAL VOC colour map."""
    from bmvseg.data.classes import (
        CAMVID_CLASSES,
        CAMVID_PALETTE,
        CITYSCAPES_CLASSES,
        CITYSCAPES_PALETTE,
        voc_palette,
    )

    lower = tuple(n.lower() for n in names)
    if lower == CAMVID_CLASSES:
        return CAMVID_PALETTE.copy()
    if lower == CITYSCAPES_CLASSES:
        return CITYSCAPES_PALETTE.copy()
    return voc_palette(len(names))


def upsample(logits: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
    """Bilinear resize to ``out_size`` (H, W), align_corners=False: the one used for logits."""
    if tuple(logits.shape[-2:]) == tuple(out_size):
        return logits
    return F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)


def crop(t: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
    """The top-left ``out_size`` (H, W) of ``t`` (``t`` itself when it is that size)."""
    if tuple(t.shape[-2:]) == tuple(out_size):
        return t
    return t[..., : out_size[0], : out_size[1]]


def pad_image(t: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """``t`` ``(N, C, H, W)`` padded at the bottom and right to ``size`` (``mode``: "replicate",
    or "reflect", which mirrors without repeating the edge and so needs the pad < the side)."""
    dh, dw = size[0] - t.shape[-2], size[1] - t.shape[-1]
    if mode == "reflect" and (dh >= t.shape[-2] or dw >= t.shape[-1]):
        mode = "replicate"  # a frame smaller than the pad: reflect is undefined
    return F.pad(t, (0, dw, 0, dh), mode=mode)


class PinnedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that runs oneDNN's CPU kernel whatever the thread count (see the module
    docstring); elsewhere (other devices or dtypes, gradients, string padding) it is
    ``nn.Conv2d`` unchanged.  Same parameters and state-dict keys."""

    def _conv_forward(
        self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        if not _onednn_applies(input, weight, self.padding):
            return super()._conv_forward(input, weight, bias)
        padding = self.padding
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        return torch.ops.aten.mkldnn_convolution(
            input, weight, bias, padding, self.stride, self.dilation, self.groups
        )


def _onednn_applies(input: torch.Tensor, weight: torch.Tensor, padding) -> bool:
    return (
        input.device.type == "cpu"
        and input.dtype == weight.dtype == torch.float32
        and input.ndim == 4
        and not isinstance(padding, str)
        and not (torch.is_grad_enabled() and (input.requires_grad or weight.requires_grad))
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )


def pin_conv_kernel(module: nn.Module) -> nn.Module:
    """Make every plain ``nn.Conv2d`` in ``module`` a :class:`PinnedConv2d` (in place; returns
    ``module``), so its outputs do not depend on the number of torch threads.  Subclasses of
    ``nn.Conv2d`` are left alone (their ``forward`` may be their own)."""
    for m in module.modules():
        if type(m) is nn.Conv2d:
            m.__class__ = PinnedConv2d
    return module


class SegmentationModel(nn.Module):
    """Base class: subclasses set the attributes below and implement ``features`` and ``logits``
    (or ``task``)."""

    num_classes: int
    class_names: Sequence[str]
    palette: np.ndarray  # (num_classes, 3) uint8 RGB
    strides: tuple[int, ...]  # stride of each tensor that ``features`` returns
    channel_order: str = "RGB"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    void_index: int | None = None
    class_map: tuple[int | None, ...] | None = None
    input_multiple: int = 1  # every input side a multiple of this (padded up to it)
    pad_mode: str = "replicate"  # how ``preprocess`` pads: "replicate" or "reflect"
    split: str | None = None  # the cut between features and task, where the model has several

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:  # pragma: no cover
        raise NotImplementedError

    def logits(self, feats: Features) -> torch.Tensor:
        """Class scores ``(N, num_classes, h, w)`` at the feature resolution."""
        raise NotImplementedError(f"{type(self).__name__} has no low-resolution logits")

    def task(self, feats: Features, out_size: tuple[int, int]) -> torch.Tensor:
        """Logits ``(N, num_classes, *out_size)``; ``out_size`` is (H, W) of the input image."""
        cover = self.padded_cover(feats, out_size)
        return crop(upsample(self.logits(feats), cover), out_size)

    def padded_size(self, hw: Sequence[int]) -> tuple[int, int]:
        """(H, W) of an ``hw`` image after ``preprocess``' padding (``hw`` when none)."""
        m = self.input_multiple
        return (-(-int(hw[0]) // m) * m, -(-int(hw[1]) // m) * m)

    def padded_cover(self, feats: Features, out_size: Sequence[int]) -> tuple[int, int]:
        """The size, at the scale of ``out_size``, of the padded image ``feats`` come from.

        ``out_size`` is the frame's size (the usual case: exact) or a fraction ``ceil(H / n)``
        of it (the engine's label stride ``n``, recovered as the nearest whole ratio).
        """
        if self.input_multiple == 1:
            return (int(out_size[0]), int(out_size[1]))
        s = self.strides[0]
        cover = []
        for p, o in zip((feats[0].shape[-2] * s, feats[0].shape[-1] * s), out_size, strict=True):
            n = 1 if self.padded_size((o, o))[0] == p else max(1, round(p / o))
            cover.append(-(-p // n))
        return (cover[0], cover[1])

    @property
    def has_lowres_logits(self) -> bool:
        """True when ``task`` is exactly a bilinear upsample of ``logits``."""
        cls = type(self)
        return cls.logits is not SegmentationModel.logits and cls.task is SegmentationModel.task

    def train(self, mode: bool = True) -> SegmentationModel:
        """``eval()`` also pins the convolution kernel (:func:`pin_conv_kernel`)."""
        super().train(mode)
        if not mode:
            pin_conv_kernel(self)
        return self

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Logits at the size of ``image`` (already preprocessed, so padded where the model
        pads: use ``task(features(x), hw)`` for the frame's own size)."""
        return self.task(self.features(image), tuple(image.shape[-2:]))

    @property
    def stride(self) -> int:
        """The coarsest feature stride (the one that decides the motion-grid scale)."""
        return max(self.strides)

    def preprocess(self, rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(H, W, 3) or (N, H, W, 3) uint8 RGB -> (N, 3, H', W') float as the model expects it
        (``(H', W') = padded_size((H, W))``)."""
        t = torch.as_tensor(rgb)
        if t.ndim == 3:
            t = t.unsqueeze(0)
        p = next(self.parameters())
        t = t.to(p.device).permute(0, 3, 1, 2)
        if self.channel_order == "BGR":
            t = t.flip(1)
        t = t.float().mul_(self.scale)
        mean = torch.tensor(self.mean, device=p.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=p.device).view(1, 3, 1, 1)
        t = (t - mean) / std
        ph, pw = self.padded_size(t.shape[-2:])
        if (ph, pw) != tuple(t.shape[-2:]):
            t = pad_image(t, (ph, pw), self.pad_mode)
        return t.contiguous(memory_format=torch.channels_last)

    def map_outputs(self, raw: torch.Tensor) -> torch.Tensor:
        """Apply ``void_index`` / ``class_map`` to raw network outputs (identity without them)."""
        groups = _output_groups(raw.shape[1], self.void_index, self.class_map)
        if groups is None:
            return raw
        if all(len(g) == 1 for g in groups):
            return raw[:, [g[0] for g in groups]]
        empty = raw.new_full((raw.shape[0], 1, *raw.shape[2:]), float("-inf"))
        return torch.cat([raw[:, g].amax(1, keepdim=True) if g else empty for g in groups], 1)


def _output_groups(
    n_raw: int, void_index: int | None, class_map: Sequence[int | None] | None
) -> list[list[int]] | None:
    """For each reported class, the raw outputs merged into it; None = outputs are the classes."""
    if void_index is None and class_map is None:
        return None
    cmap = list(class_map) if class_map is not None else _drop(n_raw, void_index)
    if void_index is not None:
        cmap[void_index] = None
    n = max((c for c in cmap if c is not None), default=-1) + 1
    groups: list[list[int]] = [[] for _ in range(n)]
    for i, c in enumerate(cmap):
        if c is not None:
            groups[c].append(i)
    return groups


def _drop(n_raw: int, void_index: int | None) -> list[int | None]:
    """The class map that removes ``void_index`` and closes the gap."""
    return [None if i == void_index else i - (void_index is not None and i > void_index)
            for i in range(n_raw)]  # fmt: skip


def check_output_conventions(
    n_raw: int, void_index: int | None, class_map: Sequence[int | None] | None
) -> int:
    """Validate the declared output conventions for a network of ``n_raw`` outputs and return
    the number of reported classes; :class:`~bmvseg.errors.BmvsegError` names what is wrong."""
    from bmvseg.errors import BmvsegError

    if void_index is not None and not (
        isinstance(void_index, int) and not isinstance(void_index, bool) and 0 <= void_index < n_raw
    ):
        raise BmvsegError(f"void_index={void_index!r} is not an output of a {n_raw}-output network")
    if class_map is not None:
        cmap = list(class_map)
        if len(cmap) != n_raw:
            raise BmvsegError(
                f"class_map has {len(cmap)} entries but the network has {n_raw} outputs"
            )
        bad = [c for c in cmap if c is not None and (not isinstance(c, int) or c < 0)]
        if bad:
            raise BmvsegError(f"class_map entries must be class ids >= 0 or None, not {bad[0]!r}")
    groups = _output_groups(n_raw, void_index, class_map)
    n = n_raw if groups is None else len(groups)
    if n < 1:
        raise BmvsegError("the output conventions leave no class to report")
    return n
