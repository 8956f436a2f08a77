"""Label sets: class names, palettes and the ignore index shared by datasets, models and metrics.

All label maps in bmvseg are uint8 class ids with :data:`IGNORE_INDEX` (255) for void pixels,
whatever the dataset's own encoding; readers convert on load.  A run's classes travel with its
labels as :class:`ClassSet` (``classes.json`` and the summary's ``classes``); a user's own
colours come from a palette file (:func:`read_palette`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bmvseg.data.legend import Legend
from bmvseg.errors import BmvsegError

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


def border_width(h: int, w: int) -> int:
    """The white keyframe border's width in pixels, for a frame ``h`` x ``w``."""
    return max(2, min(h, w) // 120)


def overlay_frame(image: np.ndarray, labels: np.ndarray, palette: np.ndarray,
                  keyframe: bool = False, legend: Legend | None = None) -> np.ndarray:  # fmt: skip
    """One frame of a run's overlay video: labels blended over the image, the ``legend`` strip
    of the classes present along the bottom, and a white frame around keyframes, so a viewer
    sees where the feature network ran (the legend says so)."""
    out = blend(image, labels, palette)
    if legend is not None:
        legend.draw_on(out, labels)
    if keyframe:
        h, w = out.shape[:2]
        cv2.rectangle(out, (0, 0), (w - 1, h - 1), (255, 255, 255), border_width(h, w))
    return out


@dataclass(frozen=True, eq=False)
class ClassSet:
    """The classes a run's labels mean: label id i is ``names[i]``, drawn in ``palette[i]``.

    ``void_output`` is the network output a model removes (its ids after it are shifted down;
    see :mod:`bmvseg.models.base`); void pixels in label maps are :data:`IGNORE_INDEX`.
    """

    names: tuple[str, ...]
    palette: np.ndarray  # (len(names), 3) uint8 RGB
    void_output: int | None = None

    @classmethod
    def of(cls, model) -> ClassSet:
        """A model's reported classes, in its palette (a ``--palette`` already applied)."""
        return cls(tuple(model.class_names), np.asarray(model.palette, np.uint8),
                   getattr(model, "void_index", None))  # fmt: skip

    def record(self) -> dict:
        """The JSON form written as ``classes.json`` and the summary's ``classes``."""
        return {
            "void_id": IGNORE_INDEX,
            "void_output": self.void_output,
            "classes": [
                {"id": i, "name": n, "color": [int(c) for c in self.palette[i]]}
                for i, n in enumerate(self.names)
            ],  # fmt: skip
        }

    def legend(self, keyframe_note: bool = True) -> Legend:
        return Legend(self.names, self.palette, keyframe_note=keyframe_note)


def read_palette(source: str | os.PathLike | Mapping, names: Sequence[str],
                 default: np.ndarray) -> np.ndarray:  # fmt: skip
    """``default`` with the colours a palette gives: a JSON file (or a mapping) of class id or
    name -> ``[r, g, b]``; any mistake is one ``BmvsegError`` line naming it."""
    where = "palette" if isinstance(source, Mapping) else f"palette {source}"
    if isinstance(source, Mapping):
        given = source
    else:
        try:
            given = json.loads(Path(source).read_text())
        except OSError as exc:
            raise BmvsegError(f"cannot read {where}: {exc.strerror or exc}") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BmvsegError(f"{where} is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise BmvsegError(f"{where} must be a JSON object of class -> [r, g, b], "
                              f"not {type(given).__name__}")  # fmt: skip
    ids = {n: i for i, n in enumerate(names)}
    out = np.asarray(default, np.uint8).copy()
    seen: dict[int, str] = {}
    for key, colour in given.items():
        text = str(key)
        i = ids.get(text, int(text) if text.isdigit() else None)
        if i is None or i >= len(names):
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise BmvsegError(f"{where}: unknown class {text!r}; the model's classes are ids "
                              f"0..{len(names) - 1} or names ({shown})")  # fmt: skip
        if i in seen:
            raise BmvsegError(f"{where}: class {i} ({names[i]}) is given twice "
                              f"({seen[i]!r} and {text!r})")  # fmt: skip
        if not (isinstance(colour, list | tuple) and len(colour) == 3 and all(
                isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255
                for c in colour)):  # fmt: skip
            raise BmvsegError(f"{where}: the colour of {text!r} must be [r, g, b] with integers "
                              f"0..255, got {str(colour)[:40]}")  # fmt: skip
        seen[i] = text
        out[i] = colour
    return out
