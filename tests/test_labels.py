"""Sparse arg-max labels equal the dense bilinear-upsample-then-arg-max labels (ties excepted)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bmvseg.schemes.labels import labels_and_share, labels_from_logits


def blob_logits(k: int, h: int, w: int, seed: int = 0, cell: int = 10) -> torch.Tensor:
    """Scores shaped like a segmentation network's: smooth class regions, a margin, noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, k, max(2, h // cell), max(2, w // cell), generator=g)
    regions = F.interpolate(coarse, (h, w), mode="bicubic", align_corners=False)[0].argmax(0)
    one_hot = F.one_hot(regions, k).permute(2, 0, 1)[None].float()
    return 4.0 * one_hot + 0.3 * torch.randn(1, k, h, w, generator=g)


def ties_only(logits: torch.Tensor, hw: tuple[int, int], void_index: int | None = None) -> int:
    """Assert the sparse labels differ from the dense ones only at exact ties; count those."""
    labels = labels_from_logits(logits, hw, void_index)
    assert labels.shape == hw and labels.dtype == np.uint8
    if void_index is not None:
        logits = logits[:, [i for i in range(logits.shape[1]) if i != void_index]]
    dense = F.interpolate(logits, hw, mode="bilinear", align_corners=False)[0]
    ref = dense.argmax(0)
    ours = torch.from_numpy(labels).long()
    differ = ours != ref
    # Where they differ, our class scores exactly as much as the dense winner: a tie.
    mine = dense.gather(0, ours[None])[0]
    assert torch.equal(mine[differ], dense.amax(0)[differ])
    return int(differ.sum())


@given(
    k=st.integers(2, 19),
    h=st.integers(1, 23),
    w=st.integers(1, 23),
    sy=st.sampled_from([1.0, 2.0, 4.0, 8.0, 2.5, 3.7]),
    sx=st.sampled_from([1.0, 4.0, 8.0, 1.3, 5.25]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=60, deadline=None)
def test_random_logits_match_dense(k: int, h: int, w: int, sy: float, sx: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, k, h, w, generator=g)
    assert ties_only(logits, (max(1, round(h * sy)), max(1, round(w * sx)))) == 0


@pytest.mark.parametrize("k", [11, 19])
@pytest.mark.parametrize(("h", "w", "out"), [(68, 120, (270, 480)), (45, 60, (360, 480))])
def test_real_looking_logits_match_dense(k: int, h: int, w: int, out: tuple[int, int]) -> None:
    logits = blob_logits(k, h, w, seed=k)
    labels, share = labels_and_share(logits, out)
    assert 0.0 < share < 0.5  # most cells are uniform: that is where the time is saved
    assert ties_only(logits, out) == 0


def test_channels_last_logits() -> None:
    logits = blob_logits(11, 34, 61, seed=3).contiguous(memory_format=torch.channels_last)
    assert ties_only(logits, (135, 241)) == 0


def test_exact_ties_are_the_only_differences() -> None:
    # Small integer scores: many classes tie exactly, before and after interpolation.
    g = torch.Generator().manual_seed(7)
    logits = torch.randint(0, 3, (1, 6, 20, 30), generator=g).float()
    for hw in [(80, 120), (57, 101)]:
        top2 = F.interpolate(logits, hw, mode="bilinear", align_corners=False)[0].topk(2, 0)
        assert (top2.values[0] == top2.values[1]).sum() > 100  # the case is exercised
        ties_only(logits, hw)  # differences allowed there, and only there (0 on CPU)


def test_downsampling_and_same_size() -> None:
    logits = blob_logits(5, 40, 50, seed=1)
    assert ties_only(logits, (40, 50)) == 0
    assert ties_only(logits, (17, 23)) == 0


def test_void_output_is_dropped() -> None:
    logits = blob_logits(6, 20, 24, seed=2)
    logits[:, 2] += 100.0  # void would win everywhere if it were a class
    labels = labels_from_logits(logits, (80, 96), void_index=2)
    assert labels.max() <= 4
    assert ties_only(logits, (80, 96), void_index=2) == 0


def test_never_predicted_class_stays_unpredicted() -> None:
    logits = blob_logits(4, 16, 16, seed=4)
    logits[:, 1] = float("-inf")  # a reported class no output maps to
    labels = labels_from_logits(logits, (64, 64))
    assert not (labels == 1).any()
    finite = logits.clone()
    finite[:, 1] = -1e30
    ref = F.interpolate(finite, (64, 64), mode="bilinear", align_corners=False)[0].argmax(0)
    assert np.array_equal(labels, ref.to(torch.uint8).numpy())


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="logits must be"):
        labels_from_logits(torch.zeros(2, 3, 4, 4), (8, 8))
