"""Cityscapes readers: labelled frames (``gtFine``) and the 30-frame video snippets around them.

Layout (the official one, as unpacked from the download archives)::

    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png
    root/leftImg8bit_sequence/{split}/{city}/{city}_{seq}_{frame:06d}_leftImg8bit.png

``labelIds`` holds the 34 Cityscapes label ids; training and evaluation use the 19 ``trainIds``
and everything else (void, ego vehicle, license plate, classes "ignored in evaluation") becomes
:data:`~bmvseg.data.classes.IGNORE_INDEX`.  Each ``leftImg8bit_sequence`` snippet has 30 frames
and its 20th frame (index 19) is the one labelled in ``gtFine``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from bmvseg.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, IGNORE_INDEX
from bmvseg.data.images import read_rgb
from bmvseg.errors import BmvsegError

SNIPPET_LENGTH = 30
LABELLED_INDEX = 19  # the 20th frame of each snippet is the gtFine one

# labelId -> trainId for the 19 evaluated classes (cityscapesScripts' labels.py).
_LABEL_TO_TRAIN = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}
LABEL_TO_TRAIN_LUT = np.full(256, IGNORE_INDEX, np.uint8)
for _label, _train in _LABEL_TO_TRAIN.items():
    LABEL_TO_TRAIN_LUT[_label] = _train

_IMG_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"


def read_train_ids(path: Path) -> np.ndarray:
    """A ``*_gtFine_labelIds.png`` as (H, W) uint8 trainIds with 255 for everything ignored."""
    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ids is None or ids.ndim != 2 or ids.dtype != np.uint8:
        raise BmvsegError(f"cannot read {path} as a single-channel 8-bit labelIds image")
    return LABEL_TO_TRAIN_LUT[ids]


def _split_dir(root: Path, kind: str, split: str) -> Path:
    d = Path(root) / kind / split
    if not d.is_dir():
        raise BmvsegError(f"Cityscapes folder {d} not found (expected the official layout)")
    return d


def _labelled_pairs(root: Path, split: str) -> list[tuple[str, str, Path, Path]]:
    """(city, stem, image, label) for every gtFine label, sorted; ``stem`` is city_seq_frame."""
    img_dir = _split_dir(root, "leftImg8bit", split)
    gt_dir = _split_dir(root, "gtFine", split)
    pairs = []
    for label in sorted(gt_dir.glob(f"*/*{_LABEL_SUFFIX}")):
        city = label.parent.name
        stem = label.name[: -len(_LABEL_SUFFIX)]
        pairs.append((city, stem, img_dir / city / f"{stem}{_IMG_SUFFIX}", label))
    if not pairs:
        raise BmvsegError(f"no *{_LABEL_SUFFIX} files under {gt_dir}")
    return pairs


class Cityscapes(Dataset):
    """Labelled Cityscapes frames: ``ds[i] -> (rgb (H, W, 3) uint8, labels (H, W) uint8)``.

    Cityscapes' ``test`` labels are withheld (the files hold no classes), so hold out ``val``.
    """

    class_names = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    num_classes = len(CITYSCAPES_CLASSES)

    def __init__(self, root: str | Path, split: str = "val") -> None:
        self.root = Path(root)
        self.split = split
        pairs = _labelled_pairs(self.root, split)
        self.images = [img for _, _, img, _ in pairs]
        self.labels = [label for _, _, _, label in pairs]
        missing = [img for img in self.images if not img.is_file()]
        if missing:
            raise BmvsegError(
                f"{len(missing)} gtFine labels have no leftImg8bit image, e.g. {missing[0]}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        img, label = self.images[i], self.labels[i]
        rgb, labels = read_rgb(img), read_train_ids(label)
        if rgb.shape[:2] != labels.shape:
            raise BmvsegError(f"{img} is {rgb.shape[:2]} but its label {label} is {labels.shape}")
        return rgb, labels


@dataclass(frozen=True)
class Snippet:
    """One 30-frame sequence snippet: ordered frame paths and its labelled frame."""

    name: str  # city_seq_frame of the labelled frame
    frames: tuple[Path, ...]
    labelled_index: int
    label_path: Path

    def label(self) -> np.ndarray:
        """(H, W) uint8 trainIds of ``frames[labelled_index]``, 255 = ignored."""
        return read_train_ids(self.label_path)


class CityscapesSequence:
    """The ``leftImg8bit_sequence`` snippets, one per gtFine label: ``seq[i] -> Snippet``.

    Frames are returned as paths so callers can stream them into an encoder without holding 30
    full-resolution frames; every path is checked to exist when the dataset is built.
    """

    class_names = CITYSCAPES_CLASSES
    palette = CITYSCAPES_PALETTE
    num_classes = len(CITYSCAPES_CLASSES)

    def __init__(self, root: str | Path, split: str = "val") -> None:
        self.root = Path(root)
        self.split = split
        seq_dir = _split_dir(self.root, "leftImg8bit_sequence", split)
        self.snippets: list[Snippet] = []
        for city, stem, _, label in _labelled_pairs(self.root, split):
            city_part, seq, frame = stem.rsplit("_", 2)
            labelled = int(frame)
            first = labelled - LABELLED_INDEX
            if first < 0:
                raise BmvsegError(f"label {label} is frame {labelled}, before the 20th frame")
            frames = tuple(
                seq_dir / city / f"{city_part}_{seq}_{first + k:06d}{_IMG_SUFFIX}"
                for k in range(SNIPPET_LENGTH)
            )
            missing = [f for f in frames if not f.is_file()]
            if missing:
                raise BmvsegError(
                    f"snippet of {label.name} lacks {len(missing)} of its {SNIPPET_LENGTH} "
                    f"frames, e.g. {missing[0]}"
                )
            self.snippets.append(Snippet(stem, frames, LABELLED_INDEX, label))

    def __len__(self) -> int:
        return len(self.snippets)

    def __getitem__(self, i: int) -> Snippet:
        return self.snippets[i]
