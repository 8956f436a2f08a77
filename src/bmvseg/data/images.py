"""Reading dataset image files (one reader, so every dataset gets RGB order and the same errors)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bmvseg.errors import BmvsegError


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; :class:`BmvsegError` if it cannot be read."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise BmvsegError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
