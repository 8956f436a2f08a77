"""Sparse arg-max labels equal the dense bilinear-upsample-then-arg-max labels (ties excepted)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bmvseg.schemes.labels import (
    DENSE_ABOVE,
    _near_method,
    _tiles,
    labels_and_share,
    labels_from_lowres_logits,
)


def blob_logits(k: int, h: int, w: int, seed: int = 0, cell: int = 10) -> torch.Tensor:
    """Scores shaped like a segmentation network's: smooth class regions, a margin, noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, k, max(2, h // cell), max(2, w // cell), generator=g)
    regions = F.interpolate(coarse, (h, w), mode="bicubic", align_corners=False)[0].argmax(0)
    one_hot = F.one_hot(regions, k).permute(2, 0, 1)[None].float()
    return 4.0 * one_hot + 0.3 * torch.randn(1, k, h, w, generator=g)


def ties_only(logits: torch.Tensor, hw: tuple[int, int], void_index: int | None = None) -> int:
    """Assert the sparse labels differ from the dense ones only at exact ties; count those.
    (The sparse path on every frame: ``dense_above=1.0``.)"""
    labels = labels_from_lowres_logits(logits, hw, void_index, dense_above=1.0)
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


@pytest.mark.parametrize("k", [11, 19])
@pytest.mark.parametrize("channels_last", [False, True])
def test_uncertain_frames_take_the_dense_path(k: int, channels_last: bool) -> None:
    """Random logits: nearly every cell disagrees, so the frame takes the dense path, whose
    labels are the reference's bit for bit; certain frames stay sparse."""
    g = torch.Generator().manual_seed(k)
    logits = torch.randn(1, k, 34, 60, generator=g)
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    labels, share = labels_and_share(logits, (135, 240))
    assert share > DENSE_ABOVE
    ref = F.interpolate(logits, (135, 240), mode="bilinear", align_corners=False)[0].argmax(0)
    assert np.array_equal(labels, ref.to(torch.uint8).numpy())
    sparse, same = labels_and_share(logits, (135, 240), dense_above=1.0)
    assert same == share and np.array_equal(sparse, labels)  # no ties in random scores
    _, certain = labels_and_share(blob_logits(k, 34, 60, seed=k), (135, 240))
    assert certain <= DENSE_ABOVE
    logits[:, 1] = float("-inf")  # a class never predicted stays so on the dense path too
    labels, share = labels_and_share(logits, (135, 240))
    assert share > DENSE_ABOVE and not (labels == 1).any()


def test_channels_last_logits() -> None:
    logits = blob_logits(11, 34, 61, seed=3).contiguous(memory_format=torch.channels_last)
    assert ties_only(logits, (135, 241)) == 0


@pytest.mark.parametrize(
    ("channels_last", "low", "out", "method"),
    [
        (False, (20, 30), (80, 120), "emulate"),  # the kernel's rounding reproduced
        (True, (20, 30), (80, 120), "crop"),  # the kernel run on 2x2 crops
        (False, (13, 17), (50, 71), "dense"),  # neither: the kernel run on the frame
        (True, (21, 22), (5, 98), "dense"),
    ],
)
def test_exact_ties_are_the_only_differences(channels_last, low, out, method) -> None:
    # Small integer scores: many classes tie, or nearly tie after rounding, everywhere.
    g = torch.Generator().manual_seed(7)
    logits = torch.randint(0, 3, (1, 6, *low), generator=g).float()
    if channels_last:
        logits = logits.contiguous(memory_format=torch.channels_last)
    key = (tuple(logits.shape), channels_last, torch.float32, torch.device("cpu"), out)
    assert _near_method(*key) == method
    top2 = F.interpolate(logits, out, mode="bilinear", align_corners=False)[0].topk(2, 0)
    assert (top2.values[0] == top2.values[1]).sum() > 20  # the case is exercised
    ties_only(logits, out)  # differences allowed there, and only there (none on this CPU)


def test_downsampling_and_same_size() -> None:
    logits = blob_logits(5, 40, 50, seed=1)
    assert ties_only(logits, (40, 50)) == 0
    assert ties_only(logits, (17, 23)) == 0


def test_void_output_is_dropped() -> None:
    logits = blob_logits(6, 20, 24, seed=2)
    logits[:, 2] += 100.0  # void would win everywhere if it were a class
    labels = labels_from_lowres_logits(logits, (80, 96), void_index=2)
    assert labels.max() <= 4
    assert ties_only(logits, (80, 96), void_index=2) == 0


def test_never_predicted_class_stays_unpredicted() -> None:
    logits = blob_logits(4, 16, 16, seed=4)
    logits[:, 1] = float("-inf")  # a reported class no output maps to
    labels = labels_from_lowres_logits(logits, (64, 64))
    assert not (labels == 1).any()
    finite = logits.clone()
    finite[:, 1] = -1e30
    ref = F.interpolate(finite, (64, 64), mode="bilinear", align_corners=False)[0].argmax(0)
    assert np.array_equal(labels, ref.to(torch.uint8).numpy())


@pytest.mark.parametrize(("n_in", "n_out"), [(135, 540), (240, 960), (17, 71), (90, 720), (21, 5)])
def test_pixel_to_source_mapping_is_the_kernels(n_in: int, n_out: int) -> None:
    # Upsampling an identity shows which sources (and weights) the kernel uses for each pixel.
    eye = torch.eye(n_in).view(1, n_in, 1, n_in)
    probe = F.interpolate(eye, (1, n_out), mode="bilinear", align_corners=False)[0, :, 0]
    tiles = _tiles(n_in, n_out, torch.device("cpu"))
    mine = torch.zeros(n_in, n_out)
    for r in range(tiles.pos.shape[0]):
        ok = tiles.valid[r]
        px = tiles.pos[r, ok]
        mine[tiles.src[ok], px] += tiles.w0[r, ok]
        mine[tiles.src1[ok], px] += tiles.w1[r, ok]
    assert torch.equal(tiles.first, probe.ne(0).int().argmax(0))  # first source of each pixel
    assert torch.allclose(mine, probe, atol=1e-6)
    covered = torch.zeros(n_out, dtype=torch.int64)
    covered.index_add_(0, tiles.pos[tiles.valid], torch.ones_like(tiles.pos[tiles.valid]))
    assert torch.equal(covered, torch.ones_like(covered))  # every pixel in exactly one tile


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="logits must be"):
        labels_from_lowres_logits(torch.zeros(2, 3, 4, 4), (8, 8))
