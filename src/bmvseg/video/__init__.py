"""Compressed video in, frames and block motion out (see :mod:`bmvseg.video.reader`)."""

from bmvseg.video.frame import Frame
from bmvseg.video.motion import MotionField, grid_shape, rasterise
from bmvseg.video.reader import VideoReader, read_motion

__all__ = ["Frame", "MotionField", "VideoReader", "grid_shape", "rasterise", "read_motion"]
