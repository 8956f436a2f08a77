"""The feature-network / task-network split every bmvseg model follows (paper Sec. 3.1).

``features`` is the expensive part run only on keyframes; ``task`` is the cheap part run on every
frame, on features that are either fresh or warped.  Features are a tuple of tensors, each
``(N, C_i, H / s_i, W / s_i)`` (rounded up) at stride ``s_i = strides[i]``, so the warp can scale a
motion field to each of them.  Images reach ``features`` already normalised by ``preprocess``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

Features = tuple[torch.Tensor, ...]


class SegmentationModel(nn.Module):
    """Base class: subclasses set the attributes below and implement ``features`` and ``task``."""

    num_classes: int
    class_names: Sequence[str]
    palette: np.ndarray  # (num_classes, 3) uint8 RGB
    strides: tuple[int, ...]  # stride of each tensor that ``features`` returns
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def features(self, image: torch.Tensor) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError

    def task(self, feats: Features, out_size: tuple[int, int]) -> torch.Tensor:  # pragma: no cover
        """Logits ``(N, num_classes, *out_size)``; ``out_size`` is (H, W) of the input image."""
        raise NotImplementedError

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.task(self.features(image), tuple(image.shape[-2:]))

    @property
    def stride(self) -> int:
        """The coarsest feature stride (the one that decides the motion-grid scale)."""
        return max(self.strides)

    def preprocess(self, rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(H, W, 3) or (N, H, W, 3) uint8 RGB -> normalised (N, 3, H, W) float."""
        t = torch.as_tensor(rgb)
        if t.ndim == 3:
            t = t.unsqueeze(0)
        p = next(self.parameters())
        t = t.to(p.device).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, device=p.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=p.device).view(1, 3, 1, 1)
        return ((t - mean) / std).contiguous(memory_format=torch.channels_last)
