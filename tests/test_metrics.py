"""ConfusionMatrix against confusion matrices worked out by hand."""

import numpy as np
import pytest
import torch

from bmvseg.evaluation.metrics import ConfusionMatrix


def test_counts_iou_and_accuracy_match_hand_computation():
    target = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 0]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # rows = truth, cols = prediction; the void pixel is not counted
    expected = np.array([[1, 1, 0], [1, 2, 0], [1, 0, 1]])
    np.testing.assert_array_equal(cm.mat, expected)
    # IoU_c = TP / (row + col - TP)
    np.testing.assert_allclose(cm.iou(), [1 / (2 + 3 - 1), 2 / (3 + 3 - 2), 1 / (2 + 1 - 1)])
    assert cm.miou() == pytest.approx(np.mean([1 / 4, 2 / 4, 1 / 2]))
    assert cm.pixel_accuracy() == pytest.approx(4 / 7)


def test_absent_class_is_excluded_but_false_positive_class_counts_as_zero():
    cm = ConfusionMatrix(4)
    cm.update(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 1, 1]))
    iou = cm.iou()
    assert np.isnan(iou[3])  # never in truth nor prediction: excluded
    assert iou[2] == 0.0  # predicted but absent from the truth: counts as 0
    assert cm.miou() == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_merge_equals_one_matrix_over_all_images():
    rng = np.random.default_rng(1)
    preds = [rng.integers(0, 5, (6, 7)) for _ in range(3)]
    targets = [rng.choice([0, 1, 2, 3, 4, 255], (6, 7)) for _ in range(3)]
    whole, parts = ConfusionMatrix(5), []
    for p, t in zip(preds, targets, strict=True):
        whole.update(p, t)
        part = ConfusionMatrix(5)
        part.update(p, t)
        parts.append(part)
    merged = parts[0].merge(parts[1]).merge(parts[2])
    np.testing.assert_array_equal(merged.mat, whole.mat)
    assert merged.mat.sum() == sum(int((t != 255).sum()) for t in targets)


def test_bad_inputs_are_rejected():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="class ids"):
        cm.update(np.full((2, 2), 3), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="merge"):
        cm.merge(ConfusionMatrix(4))
    assert np.isnan(ConfusionMatrix(3).miou())
