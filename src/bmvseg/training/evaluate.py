"""Per-image evaluation of a single-frame model on a dataset split (used by train and evaluate)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from bmvseg import progress as progress_report
from bmvseg.evaluation.metrics import ConfusionMatrix
from bmvseg.models.base import SegmentationModel


@torch.inference_mode()
def predict(model: SegmentationModel, rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 class ids at the image's resolution."""
    logits = model.task(model.features(model.preprocess(rgb)), rgb.shape[:2])
    return logits.argmax(1)[0].to(torch.uint8).cpu().numpy()


def evaluate_model(
    model: SegmentationModel,
    items: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    progress: bool = False,
    total: int | None = None,
) -> ConfusionMatrix:
    """Confusion matrix of ``model`` (switched to eval mode) over ``(rgb, labels)`` items."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(model.num_classes)
    try:
        bar = progress_report.bar(items, total=total, disable=not progress, desc="eval",
                                  leave=False)  # fmt: skip
        for rgb, labels in bar:
            cm.update(predict(model, rgb), labels)
    finally:
        model.train(was_training)
    return cm


def iou_table(class_names: Iterable[str], cm: ConfusionMatrix) -> str:
    """Markdown table of per-class IoU (percent) and the mIoU / pixel accuracy lines."""
    rows = ["| class | IoU % |", "|---|---|"]
    for name, v in zip(class_names, cm.iou(), strict=True):
        rows.append(f"| {name} | {'n/a' if np.isnan(v) else f'{100 * v:.1f}'} |")
    rows.append(f"| **mIoU** | **{100 * cm.miou():.1f}** |")
    rows.append(f"| pixel accuracy | {100 * cm.pixel_accuracy():.1f} |")
    return "\n".join(rows)
