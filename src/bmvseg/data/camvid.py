"""CamVid readers: the 11-class 480x360 SegNet layout and the original 960x720 32-class layout.

Both yield ``(rgb, labels)``: ``rgb`` uint8 ``(H, W, 3)``, ``labels`` uint8 ``(H, W)`` with the
11 CamVid ids of :mod:`bmvseg.data.classes` and 255 for void.  This ``(rgb, labels)`` pair plus
the ``class_names`` and ``palette`` attributes is the dataset interface ``bmvseg train`` relies on.

Layouts (detected from the files in ``root``):

- SegNet: ``train/ trainannot/ val/ valannot/ test/ testannot/`` with single-channel labels
  0..10 and 11 = void.  ``val/`` is the contiguous 15 Hz run of 0016E5 (``video_run``): the
  labelled video of the experiments, never to be trained or selected on.
- Original: ``701_StillsRaw_full/NAME.png`` and ``LabeledApproved_full/NAME_L.png`` colour labels
  over 32 classes, grouped into the 11 classes by :data:`CAMVID32_TO_11`.  The original release
  has no split files, so ``root/<split>.txt`` must list the frames (one per line; the first
  token's file stem is used, so SegNet's ``train.txt`` works as is).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE, IGNORE_INDEX
from bmvseg.data.images import read_rgb
from bmvseg.errors import BmvsegError

SPLITS = ("train", "val", "test")
VIDEO_RUN_FILE = "0016E5_15Hz_val_run.txt"

# The 32 colour-coded classes of the original release, grouped into the 11 classes (the grouping
# of Sturgess et al. 2009 / SegNet).  Colours not listed (Void, Animal) become void.
_GROUPS: dict[str, list[tuple[str, tuple[int, int, int]]]] = {
    "sky": [("Sky", (128, 128, 128))],
    "building": [
        ("Building", (128, 0, 0)),
        ("Wall", (64, 192, 0)),
        ("Tunnel", (64, 0, 64)),
        ("Archway", (192, 0, 128)),
        ("Bridge", (0, 128, 64)),
    ],
    "pole": [("Column_Pole", (192, 192, 128)), ("TrafficCone", (0, 0, 64))],
    "road": [
        ("Road", (128, 64, 128)),
        ("LaneMkgsDriv", (128, 0, 192)),
        ("LaneMkgsNonDriv", (192, 0, 64)),
    ],
    "pavement": [
        ("Sidewalk", (0, 0, 192)),
        ("ParkingBlock", (64, 192, 128)),
        ("RoadShoulder", (128, 128, 192)),
    ],
    "tree": [("Tree", (128, 128, 0)), ("VegetationMisc", (192, 192, 0))],
    "sign": [
        ("SignSymbol", (192, 128, 128)),
        ("Misc_Text", (128, 128, 64)),
        ("TrafficLight", (0, 64, 64)),
    ],
    "fence": [("Fence", (64, 64, 128))],
    "car": [
        ("Car", (64, 0, 128)),
        ("SUVPickupTruck", (64, 128, 192)),
        ("Truck_Bus", (192, 128, 192)),
        ("Train", (192, 64, 128)),
        ("OtherMoving", (128, 64, 64)),
    ],
    "pedestrian": [
        ("Pedestrian", (64, 64, 0)),
        ("Child", (192, 128, 64)),
        ("CartLuggagePram", (64, 0, 192)),
    ],
    "bicyclist": [("Bicyclist", (0, 128, 192)), ("MotorcycleScooter", (192, 0, 192))],
}
CAMVID32_TO_11: dict[tuple[int, int, int], int] = {
    rgb: CAMVID_CLASSES.index(cls) for cls, members in _GROUPS.items() for _, rgb in members
}


def colour_labels_to_ids(label_rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 CamVid colour label image -> (H, W) uint8 11-class ids, 255 = void."""
    code = (label_rgb[..., 0].astype(np.int32) << 16) | (label_rgb[..., 1].astype(np.int32) << 8)
    code |= label_rgb[..., 2]
    lut_keys = np.array([(r << 16) | (g << 8) | b for r, g, b in CAMVID32_TO_11], np.int32)
    lut_vals = np.array(list(CAMVID32_TO_11.values()), np.uint8)
    order = np.argsort(lut_keys)
    lut_keys, lut_vals = lut_keys[order], lut_vals[order]
    idx = np.clip(np.searchsorted(lut_keys, code), 0, len(lut_keys) - 1)
    return np.where(lut_keys[idx] == code, lut_vals[idx], IGNORE_INDEX).astype(np.uint8)


def _read_gray(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise BmvsegError(f"cannot read label image {path}")
    if img.ndim != 2:
        raise BmvsegError(f"label image {path} is not single-channel (shape {img.shape})")
    return img


def _split_names(list_file: Path) -> list[str]:
    names = []
    for line in list_file.read_text().splitlines():
        if line.strip():
            names.append(Path(line.split()[0]).stem)
    return names


class CamVid(Dataset):
    """CamVid split ``split`` under ``root`` (either layout); items are ``(rgb, labels)`` arrays.

    ``cache=True`` decodes every frame once and keeps it in memory (the 367 train frames at
    480x360 are ~250 MB), which makes epochs after the first PNG-free.
    """

    class_names = CAMVID_CLASSES
    palette = CAMVID_PALETTE
    num_classes = len(CAMVID_CLASSES)

    def __init__(self, root: str | Path, split: str = "train", *, cache: bool = False) -> None:
        self.root = Path(root)
        if split not in SPLITS:
            raise BmvsegError(f"unknown CamVid split {split!r}; expected one of {SPLITS}")
        if not self.root.is_dir():
            raise BmvsegError(f"CamVid root {self.root} is not a directory")
        self.split = split
        if (self.root / split).is_dir() and (self.root / f"{split}annot").is_dir():
            self.layout = "segnet"
            self.images = sorted((self.root / split).glob("*.png"))
            self.labels = [self.root / f"{split}annot" / p.name for p in self.images]
        elif (self.root / "701_StillsRaw_full").is_dir() and (
            self.root / "LabeledApproved_full"
        ).is_dir():
            self.layout = "original"
            list_file = self.root / f"{split}.txt"
            if not list_file.is_file():
                raise BmvsegError(
                    f"original CamVid layout in {self.root} needs a split list {list_file} "
                    "(one frame name per line, e.g. SegNet's train.txt)"
                )
            names = _split_names(list_file)
            self.images = [self.root / "701_StillsRaw_full" / f"{n}.png" for n in names]
            self.labels = [self.root / "LabeledApproved_full" / f"{n}_L.png" for n in names]
        else:
            raise BmvsegError(
                f"{self.root} is not a CamVid root: expected {split}/ and {split}annot/, or "
                "701_StillsRaw_full/ and LabeledApproved_full/"
            )
        if not self.images:
            raise BmvsegError(f"no frames for CamVid split {split!r} in {self.root}")
        for p in (*self.images, *self.labels):
            if not p.is_file():
                raise BmvsegError(f"CamVid file missing: {p}")
        self._cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        if cache:
            self._cache = [self._load(i) for i in range(len(self.images))]

    def __len__(self) -> int:
        return len(self.images)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        rgb = read_rgb(self.images[i])
        if self.layout == "segnet":
            lab = _read_gray(self.labels[i]).astype(np.uint8)
            lab[lab >= self.num_classes] = IGNORE_INDEX
        else:
            lab = colour_labels_to_ids(read_rgb(self.labels[i]))
        if lab.shape != rgb.shape[:2]:
            raise BmvsegError(f"label {self.labels[i]} is {lab.shape}, image is {rgb.shape[:2]}")
        return rgb, lab

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None:
            return self._cache[i]
        return self._load(i)


def video_run(root: str | Path) -> list[Path]:
    """Ordered frame paths of the 15 Hz labelled 0016E5 run (``val/``), from its list file."""
    root = Path(root)
    list_file = root / VIDEO_RUN_FILE
    if not list_file.is_file():
        raise BmvsegError(
            f"{list_file} not found: not the 11-class CamVid layout with the video run"
        )
    paths = [
        root / "val" / line.strip() for line in list_file.read_text().splitlines() if line.strip()
    ]
    for p in paths:
        if not p.is_file():
            raise BmvsegError(f"video run frame missing: {p}")
    return paths


def video_run_labels(root: str | Path) -> list[Path]:
    """Label paths matching :func:`video_run`, in the same order."""
    return [Path(root) / "valannot" / p.name for p in video_run(root)]
