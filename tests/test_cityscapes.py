"""Cityscapes readers on tiny fixtures written in the official file layout and encodings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bmvseg.data.cityscapes import Cityscapes, CityscapesSequence
from bmvseg.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE_INDEX
from bmvseg.errors import BmvsegError

# Every Cityscapes labelId with its name, as in cityscapesScripts' labels.py.
LABEL_NAMES = {
    0: "unlabeled", 1: "ego vehicle", 2: "rectification border", 3: "out of roi", 4: "static",
    5: "dynamic", 6: "ground", 7: "road", 8: "sidewalk", 9: "parking", 10: "rail track",
    11: "building", 12: "wall", 13: "fence", 14: "guard rail", 15: "bridge", 16: "tunnel",
    17: "pole", 18: "polegroup", 19: "traffic light", 20: "traffic sign", 21: "vegetation",
    22: "terrain", 23: "sky", 24: "person", 25: "rider", 26: "car", 27: "truck", 28: "bus",
    29: "caravan", 30: "trailer", 31: "train", 32: "motorcycle", 33: "bicycle",
}  # fmt: skip

H, W = 12, 16


def _expected(label_ids: np.ndarray) -> np.ndarray:
    """trainIds by class name: a class named in the 19-class set gets its index, else void."""
    out = np.full(label_ids.shape, IGNORE_INDEX, np.uint8)
    for lid, name in LABEL_NAMES.items():
        if name in CITYSCAPES_CLASSES:
            out[label_ids == lid] = CITYSCAPES_CLASSES.index(name)
    return out


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _frame(value: int) -> np.ndarray:
    """An RGB frame whose channels differ, so a BGR/RGB swap shows, and whose value is `value`."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = value
    rgb[..., 1] = 255 - value
    rgb[..., 2] = 7
    return rgb


def _write_dataset(root: Path, split: str, labelled: list[tuple[str, str, int]]) -> dict:
    """gtFine + leftImg8bit + 30-frame sequences for each (city, seq, labelled frame)."""
    rng = np.random.default_rng(0)
    written = {}
    for city, seq, frame in labelled:
        stem = f"{city}_{seq}_{frame:06d}"
        ids = rng.choice(np.array(list(LABEL_NAMES), np.uint8), size=(H, W))
        ids.flat[: len(LABEL_NAMES)] = list(LABEL_NAMES)  # every labelId appears
        _write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", ids)
        rgb = _frame(frame % 200)
        _write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb)
        for f in range(frame - 19, frame + 11):
            name = f"{city}_{seq}_{f:06d}_leftImg8bit.png"
            _write_png(root / "leftImg8bit_sequence" / split / city / name, _frame(f % 200))
        written[stem] = (rgb, ids)
    return written


LABELLED = [("aachen", "000000", 19), ("aachen", "000003", 119), ("bremen", "000042", 19)]


@pytest.fixture
def root(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, _write_dataset(tmp_path, "val", LABELLED)


def test_labelled_frames_map_label_ids_to_train_ids(root):
    path, written = root
    ds = Cityscapes(path, "val")
    assert len(ds) == len(LABELLED)
    assert ds.class_names == CITYSCAPES_CLASSES and ds.num_classes == 19
    assert np.array_equal(ds.palette, CITYSCAPES_PALETTE)
    for img, label, stem in zip(ds.images, ds.labels, sorted(written), strict=True):
        assert img.name.startswith(stem) and label.name.startswith(stem)
    for i, (stem, (rgb, ids)) in enumerate(sorted(written.items())):
        got_rgb, got_labels = ds[i]
        assert got_rgb.dtype == np.uint8 and got_rgb.shape == (H, W, 3)
        assert np.array_equal(got_rgb, rgb), stem
        assert got_labels.dtype == np.uint8 and got_labels.shape == (H, W)
        assert np.array_equal(got_labels, _expected(ids)), stem
        # Void (unlabeled, ego vehicle, guard rail, caravan...) really is present and ignored.
        assert (got_labels == IGNORE_INDEX).any()
        assert set(np.unique(got_labels)) - {IGNORE_INDEX} == set(range(19))


def test_sequence_snippets_are_ordered_around_the_labelled_frame(root):
    path, written = root
    seq = CityscapesSequence(path, "val")
    assert len(seq) == len(LABELLED)
    for snip, (city, _, frame) in zip(seq, sorted(LABELLED), strict=True):
        assert len(snip.frames) == 30 and snip.labelled_index == 19
        numbers = [int(p.name.split("_")[2]) for p in snip.frames]
        assert numbers == list(range(frame - 19, frame + 11))
        assert all(p.parent.name == city and p.is_file() for p in snip.frames)
        # The labelled sequence frame is the gtFine frame, and the label matches it.
        labelled = np.asarray(Image.open(snip.frames[snip.labelled_index]))
        rgb, ids = written[snip.name]
        assert np.array_equal(labelled, rgb)
        assert np.array_equal(snip.label(), _expected(ids))


def test_missing_sequence_frame_is_a_clear_error(root):
    path, _ = root
    gone = path / "leftImg8bit_sequence/val/bremen/bremen_000042_000025_leftImg8bit.png"
    gone.unlink()
    with pytest.raises(BmvsegError, match="bremen_000042_000025"):
        CityscapesSequence(path, "val")
    Cityscapes(path, "val")  # the labelled-frame reader does not need the sequences


def test_missing_layout_and_missing_image_are_clear_errors(tmp_path, root):
    with pytest.raises(BmvsegError, match="leftImg8bit"):
        Cityscapes(tmp_path / "nowhere", "val")
    path, _ = root
    with pytest.raises(BmvsegError, match="train"):
        Cityscapes(path, "train")
    (path / "leftImg8bit/val/aachen/aachen_000003_000119_leftImg8bit.png").unlink()
    with pytest.raises(BmvsegError, match="aachen_000003_000119"):
        Cityscapes(path, "val")
