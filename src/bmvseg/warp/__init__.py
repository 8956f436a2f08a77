"""Warping feature maps with motion fields; the convention lives in :mod:`bmvseg.warp.warp`."""

from bmvseg.warp.warp import (
    PreparedFlow,
    Sampler,
    backward_flow,
    compose,
    dense_to_flow,
    field_to_flow,
    field_to_flows,
    prepared,
    sampler,
    warp,
    warp_pair,
    warp_with,
)

__all__ = [
    "PreparedFlow",
    "Sampler",
    "backward_flow",
    "compose",
    "dense_to_flow",
    "field_to_flow",
    "field_to_flows",
    "prepared",
    "sampler",
    "warp",
    "warp_pair",
    "warp_with",
]
