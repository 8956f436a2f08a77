"""Training augmentation keeps image and labels aligned and never invents label values."""

import numpy as np

from bmvseg.data.classes import IGNORE_INDEX
from bmvseg.data.transforms import TrainAugment, random_crop


def _scene(h=60, w=80):
    # labels = a coarse grid of classes; the image encodes the label in its red channel
    lab = (np.arange(h)[:, None] // 20 * 4 + np.arange(w)[None, :] // 20).astype(np.uint8)
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = lab * 20
    return rgb, lab


def test_augmented_pairs_stay_aligned_and_label_set_is_preserved():
    rgb, lab = _scene()
    aug = TrainAugment(crop=(48, 64), scale=(0.5, 2.0), jitter=0.0)
    for seed in range(20):
        out_rgb, out_lab = aug(rgb, lab, np.random.default_rng(seed))
        assert out_rgb.shape == (48, 64, 3) and out_lab.shape == (48, 64)
        assert set(np.unique(out_lab)) <= set(np.unique(lab)) | {IGNORE_INDEX}
        inside = out_lab != IGNORE_INDEX
        # away from class borders the image still says the same class as the label
        match = np.abs(out_rgb[..., 0].astype(int) - out_lab.astype(int) * 20) <= 10
        assert match[inside].mean() > 0.9


def test_small_images_are_padded_with_void_and_black():
    rgb, lab = _scene(10, 12)
    out_rgb, out_lab = random_crop(rgb, lab, (16, 20), np.random.default_rng(0))
    assert out_lab.shape == (16, 20)
    assert (out_lab[10:] == IGNORE_INDEX).all() and (out_lab[:, 12:] == IGNORE_INDEX).all()
    assert (out_rgb[10:] == 0).all()
    np.testing.assert_array_equal(out_lab[:10, :12], lab)


def test_same_rng_seed_gives_the_same_sample():
    rgb, lab = _scene()
    aug = TrainAugment(crop=(32, 32))
    a = aug(rgb, lab, np.random.default_rng(7))
    b = aug(rgb, lab, np.random.default_rng(7))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
