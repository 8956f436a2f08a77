"""Warping feature maps with motion fields; the convention lives in :mod:`bmvseg.warp.warp`."""

from bmvseg.warp.warp import backward_flow, compose, dense_to_flow, field_to_flow, warp

__all__ = ["backward_flow", "compose", "dense_to_flow", "field_to_flow", "warp"]
