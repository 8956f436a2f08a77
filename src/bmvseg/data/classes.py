"""Label sets: class names, palettes and the ignore index shared by datasets, models and metrics.

All label maps in bmvseg are uint8 class ids with :data:`IGNORE_INDEX` (255) for void pixels,
whatever the dataset's own encoding; readers convert on load.
"""

from __future__ import annotations

import cv2
import numpy as np

IGNORE_INDEX = 255

# CamVid 11-class set (SegNet layout): ids 0..10, void (11 in the files) becomes IGNORE_INDEX.
CAMVID_CLASSES: tuple[str, ...] = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
CAMVID_PALETTE = np.array(
    [
        [128, 128, 128],
        [128, 0, 0],
        [192, 192, 128],
        [128, 64, 128],
        [0, 0, 192],
        [128, 128, 0],
        [192, 128, 128],
        [64, 64, 128],
        [64, 0, 128],
        [64, 64, 0],
        [0, 128, 192],
    ],
    dtype=np.uint8,
)

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
)
CITYSCAPES_PALETTE = np.array(
    [
        [128, 64, 128],
        [244, 35, 232],
        [70, 70, 70],
        [102, 102, 156],
        [190, 153, 153],
        [153, 153, 153],
        [250, 170, 30],
        [220, 220, 0],
        [107, 142, 35],
        [152, 251, 152],
        [70, 130, 180],
        [220, 20, 60],
        [255, 0, 0],
        [0, 0, 142],
        [0, 0, 70],
        [0, 60, 100],
        [0, 80, 100],
        [0, 0, 230],
        [119, 11, 32],
    ],
    dtype=np.uint8,
)


def voc_palette(n: int) -> np.ndarray:
    """The PASCAL VOC colour map (bit-interleaved class ids), as users of VOC labels expect."""
    pal = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def colorize(labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) RGB; ignored pixels are black.

    OpenCV's table look-up on the id replicated to three channels: several times faster than
    NumPy's fancy indexing at video sizes (it runs on every frame of an overlay).
    """
    lut = np.zeros((256, 1, 3), np.uint8)
    lut[: len(palette), 0] = palette
    ids = np.ascontiguousarray(labels, dtype=np.uint8)
    return cv2.LUT(cv2.merge([ids, ids, ids]), lut)


def blend(image: np.ndarray, labels: np.ndarray, palette: np.ndarray, alpha: float = 0.5):
    """Labels drawn over an RGB image in the palette's colours (``alpha`` = label opacity)."""
    return cv2.addWeighted(image, 1 - alpha, colorize(labels, palette), alpha, 0)


def overlay_frame(image: np.ndarray, labels: np.ndarray, palette: np.ndarray,
                  keyframe: bool = False) -> np.ndarray:  # fmt: skip
    """One frame of a run's overlay video: labels blended over the image, and a white frame
    around keyframes, so a viewer sees where the feature network ran."""
    out = blend(image, labels, palette)
    if keyframe:
        h, w = out.shape[:2]
        cv2.rectangle(out, (0, 0), (w - 1, h - 1), (255, 255, 255), max(2, min(h, w) // 120))
    return out
