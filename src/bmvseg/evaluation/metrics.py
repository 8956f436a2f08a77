"""Confusion-matrix segmentation metrics (the standard mIoU bookkeeping).

Convention: ``mat[t, p]`` counts pixels of ground-truth class ``t`` predicted as ``p``; pixels
whose target is ``ignore_index`` (void) are not counted, and neither are targets outside
``[0, num_classes)``.  IoU of class c = TP / (TP + FP + FN).  ``miou()`` is the mean over all
classes whose union TP + FP + FN is non-zero (a class absent from both ground truth and
prediction is excluded rather than counted as 0 or 1); a class absent from the ground truth but
predicted somewhere has IoU 0 and counts.
"""

from __future__ import annotations

import numpy as np
import torch

from bmvseg.data.classes import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates a ``(num_classes, num_classes)`` int64 confusion matrix over many images."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = np.zeros((num_classes, num_classes), np.int64)

    def update(self, pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor) -> None:
        """Add one batch; ``pred`` and ``target`` are class-id arrays of the same shape."""
        p = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
        t = (
            target.detach().cpu().numpy()
            if isinstance(target, torch.Tensor)
            else np.asarray(target)
        )
        if p.shape != t.shape:
            raise ValueError(f"prediction shape {p.shape} != target shape {t.shape}")
        n = self.num_classes
        t = t.reshape(-1).astype(np.int64)
        p = p.reshape(-1).astype(np.int64)
        keep = (t >= 0) & (t < n) & (t != self.ignore_index)
        p, t = p[keep], t[keep]
        if p.size and (p.min() < 0 or p.max() >= n):
            raise ValueError(f"predictions must be class ids in [0, {n}), got {p.min()}..{p.max()}")
        self.mat += np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add ``other``'s counts into this matrix (e.g. from another worker); returns self."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.mat += other.mat
        return self

    def reset(self) -> None:
        self.mat[:] = 0

    def iou(self) -> np.ndarray:
        """Per-class IoU, NaN where the class has no union (absent everywhere)."""
        tp = np.diag(self.mat).astype(np.float64)
        union = self.mat.sum(0) + self.mat.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def miou(self) -> float:
        """Mean IoU over classes with a non-zero union (NaN if nothing was counted)."""
        iou = self.iou()
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def pixel_accuracy(self) -> float:
        """Fraction of counted (non-void) pixels predicted correctly."""
        total = self.mat.sum()
        return float(np.trace(self.mat) / total) if total else float("nan")
