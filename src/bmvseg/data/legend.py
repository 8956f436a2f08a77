"""The overlay's legend strip: each class shown, its colour and name, and what a white border
means, drawn once per set of classes and reused on every frame that shows the same set.

Design (measured on 640- and 960-pixel-wide frames): a black strip along the bottom edge,
one entry per class (a colour swatch of the palette's pure colour, then the name in OpenCV's
Hershey font), wrapped into rows.  Only the classes present in the frame are listed: all 19
Cityscapes classes take three rows at 640 px and a 150-class set could never fit, while a
street frame shows 5-9 classes, one row.  Text and swatches scale with the frame's width
(the sizes below are those at 640 px) and never drop under a readable minimum.  The strip
is cached per (classes shown, width), so a frame costs a histogram of its labels and a copy
of the strip's rows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import cv2
import numpy as np

KEYFRAME_NOTE = "white border: keyframe (features computed)"
BASE_WIDTH = 640  # the sizes below are for a frame this wide
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.45
MIN_SCALE = 0.75  # narrower frames keep the sizes of a 480-px one (readable, codec-safe)
SWATCH = 12  # px, the coloured square before each name
ROW = 18  # px per row of entries
GAP = 10  # px between entries
MAX_ROWS = 3  # more classes than fit: the rest are counted ("+N more")
CACHE = 64  # strips kept (distinct sets of classes a video shows are few)


class Legend:
    """Legend strips for one class set (names and palette), cached by what they show."""

    def __init__(self, names: Sequence[str], palette: np.ndarray, *, keyframe_note: bool = True
                 ) -> None:  # fmt: skip
        self.names = tuple(names)
        self.palette = np.asarray(palette, np.uint8)
        self.keyframe_note = keyframe_note
        self._strips: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def present(self, labels: np.ndarray) -> tuple[int, ...]:
        """The class ids that occur in ``labels`` (a histogram: ~0.2 ms at 960x540)."""
        ids = np.ascontiguousarray(labels, dtype=np.uint8)
        hist = cv2.calcHist([ids], [0], None, [256], [0, 256]).ravel()[: len(self.names)]
        return tuple(int(i) for i in np.flatnonzero(hist))

    def strip(self, ids: Sequence[int], width: int, sized_for: int | None = None) -> np.ndarray:
        """The (h, ``width``, 3) RGB strip listing ``ids`` (cached), its text sized for a frame
        ``sized_for`` pixels wide (default ``width``; smaller under a row of several panels)."""
        key = (tuple(ids), width, sized_for or width)
        strip = self._strips.get(key)
        if strip is None:
            strip = self._draw(key[0], width, key[2])
            self._strips[key] = strip
            if len(self._strips) > CACHE:
                self._strips.popitem(last=False)
        else:
            self._strips.move_to_end(key)
        return strip

    def draw_on(self, frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``frame`` (RGB, changed in place) with the strip of its classes over its bottom rows."""
        h, w = frame.shape[:2]
        strip = self.strip(self.present(labels), w)
        rows = min(len(strip), h)
        frame[h - rows :] = strip[len(strip) - rows :]
        return frame

    def _draw(self, ids: tuple[int, ...], width: int, sized_for: int) -> np.ndarray:
        s = max(sized_for / BASE_WIDTH, MIN_SCALE)
        font, sw, row, gap = FONT_SCALE * s, round(SWATCH * s), round(ROW * s), round(GAP * s)
        thick = max(1, round(s))
        pad = max(2, gap // 2)
        entries = [(self.names[i], self.palette[i], False) for i in ids]
        if self.keyframe_note:
            entries.append((KEYFRAME_NOTE, None, True))
        placed: list[tuple[int, int, tuple]] = []  # (x, row, entry)
        x, r = pad, 0
        for n, entry in enumerate(entries):
            tw = cv2.getTextSize(entry[0], FONT, font, thick)[0][0]
            need = sw + pad + tw
            if x > pad and x + need > width - pad:
                x, r = pad, r + 1
            if r == MAX_ROWS:  # no room: count the rest on the last row
                placed = _make_room(placed, entries[n:], width, (font, thick, sw, pad, gap))
                break
            placed.append((x, r, entry))
            x += need + gap
        rows = 1 + max((p[1] for p in placed), default=0)
        strip = np.zeros((rows * row + pad, width, 3), np.uint8)
        for x, r, (name, colour, is_note) in placed:
            top = pad + r * row + (row - pad - sw) // 2
            box = (x, top), (x + sw - 1, top + sw - 1)
            if is_note:
                cv2.rectangle(strip, *box, (255, 255, 255), max(2, thick))
            elif colour is not None:
                cv2.rectangle(strip, *box, tuple(int(c) for c in colour), -1)
            base = pad + r * row + (row - pad + cv2.getTextSize("Ag", FONT, font, thick)[0][1]) // 2
            cv2.putText(strip, name, (x + sw + pad, base), FONT, font, (255, 255, 255), thick,
                        cv2.LINE_AA)  # fmt: skip
        return strip


def _make_room(placed: list, rest: list, width: int, sizes: tuple[float, int, int, int, int]
               ) -> list:  # fmt: skip
    """Entries of the last row dropped until "+N more" (the classes left out) fits after them."""
    font, thick, sw, pad, gap = sizes
    last = placed[-1][1]
    while True:
        ends = [x + sw + pad + cv2.getTextSize(e[0], FONT, font, thick)[0][0] + gap
                for x, r, e in placed if r == last]  # fmt: skip
        end = max(ends, default=pad)
        more = f"+{len(rest)} more"
        if not ends or end + sw + pad + cv2.getTextSize(more, FONT, font, thick)[0][0] <= width:
            return [*placed, (end, last, (more, None, False))]
        rest = [placed[-1][2], *rest]
        placed = placed[:-1]
