"""Dense optical flow (OpenCV DIS), the motion source of Deep Feature Flow's schemes.

A flow from the current image to a keyframe's image is a pull flow that carries the keyframe's
features onto the current frame (:func:`~bmvseg.schemes.propagation.flows_key_to_cur`), one
warp whatever the distance: no chain, so no blur accumulates, at the price of one flow
computation per frame and keyframe.
"""

from __future__ import annotations

import cv2
import numpy as np

from bmvseg.models.base import Features
from bmvseg.schemes.propagation import flows_key_to_cur, warp_features
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.frame import Frame

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


def gray(frame: Frame) -> np.ndarray:
    """The frame's image as DIS reads it."""
    return cv2.cvtColor(frame.image, cv2.COLOR_RGB2GRAY)


class DenseFlow:
    """One DIS instance of one run, and the warps of keyframe features along its flows."""

    def __init__(self, preset: str, strides, timer: StageTimer) -> None:
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
        self.strides = strides
        self.timer = timer

    def pull(self, cur_gray: np.ndarray, key_gray: np.ndarray) -> np.ndarray:
        """The flow (H, W, 2) from the current image to the keyframe's (timed as ``flow``)."""
        with self.timer("flow"):
            return self.dis.calc(cur_gray, key_gray, None)

    def warp(self, key_feats: Features, flow: np.ndarray) -> Features:
        """The keyframe's features carried onto the current frame along ``flow``."""
        return warp_features(key_feats, flows_key_to_cur(flow, key_feats, self.strides))
