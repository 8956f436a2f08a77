"""What the engine runs: :class:`EngineConfig`, the one home of the scheme options' defaults.

The command line shows these defaults (``bmvseg.cli.options`` reads them from here), the
Python API takes them as keywords, and :class:`~bmvseg.run.options.RunOptions` holds one
``EngineConfig``; every field is type-checked against its annotation on construction, so a
wrong type or value is one :class:`~bmvseg.errors.BmvsegError` naming the keyword.
"""

from __future__ import annotations

import functools
import os
import types
import typing
from dataclasses import dataclass, fields

from bmvseg.errors import BmvsegError
from bmvseg.schemes.base import Traits
from bmvseg.schemes.fusion import FUSIONS
from bmvseg.schemes.keyframes import PLACEMENTS, KeyframeSchedule, make_schedule
from bmvseg.schemes.optical_flow import DIS_PRESETS
from bmvseg.schemes.registry import SCHEMES, scheme_class

# The longest keyframe interval a run may ask for (``interval`` and ``max_interval``).  A scheme
# that fuses two keyframes holds every frame of an interval until the keyframe closing it has
# arrived, and adaptive placement looks ``max_interval`` frames ahead: 300 frames (10 s at
# 30 fps) is about 0.9 GB of decoded 1080p frames (YUV 4:2:0), four times that once their RGB
# images are converted.  Longer intervals also warp features across more frames than any
# measured accuracy survives (RESULTS.md stops at 10).
MAX_INTERVAL = 300


@dataclass(frozen=True)
class EngineConfig:
    """The engine's options; checked on construction (see :func:`check_annotated`)."""

    scheme: str = "inter-bmv"  # one of SCHEMES (bmvseg.schemes.registry)
    interval: int = 5  # keyframe interval n (1 .. MAX_INTERVAL)
    fusion: str = "avg"  # avg: max collapses on models with signed features; conv needs weights
    phase: int = 0  # fixed placement: keyframes at index % interval == phase (and frame 0)
    keyframes: str = "fixed"  # placement, one of PLACEMENTS (bmvseg.schemes.keyframes)
    max_interval: int | None = None  # adaptive placement's longest interval (None: 2 * interval)
    accumulate: bool = False  # compose motion and warp once per frame instead of chaining warps
    flow_preset: str = "fast"  # OpenCV DIS preset of the optical-flow schemes
    label_stride: int = 1  # argmax at 1/label_stride resolution, labels upsampled by nearest
    keep_logits: bool = False
    keep_features: bool = False

    def __post_init__(self) -> None:
        check_annotated(self)
        _choice("scheme", self.scheme, SCHEMES)
        _choice("fusion", self.fusion, FUSIONS)
        _choice("keyframes", self.keyframes, PLACEMENTS)
        _choice("flow_preset", self.flow_preset, tuple(DIS_PRESETS))
        if not 1 <= self.interval <= MAX_INTERVAL:
            raise BmvsegError(
                f"interval (the keyframe interval) must be in 1..{MAX_INTERVAL}, got "
                f"{self.interval} (an interval's frames are held in memory)"
            )
        if not 0 <= self.phase < self.interval:
            raise BmvsegError(f"phase must be in 0..{self.interval - 1}, got {self.phase}")
        if self.max_interval is not None and not (
            self.interval <= self.max_interval <= MAX_INTERVAL
        ):
            raise BmvsegError(
                f"max_interval must be in {self.interval} (the interval)..{MAX_INTERVAL}, got "
                f"{self.max_interval} (adaptive placement holds that many frames in memory)"
            )
        if self.label_stride < 1:
            raise BmvsegError(f"label_stride must be >= 1, got {self.label_stride}")

    @property
    def traits(self) -> Traits:
        """What the configured scheme is (see :class:`~bmvseg.schemes.base.Traits`)."""
        return scheme_class(self.scheme).traits

    def schedule(self) -> KeyframeSchedule:
        """A fresh keyframe placement for one run (a scheme with no interval: every frame)."""
        n = self.interval if self.traits.uses_interval else 1
        kind = "fixed" if n == 1 else self.keyframes
        return make_schedule(kind, n, self.phase if n > 1 else 0, self.max_interval)


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise BmvsegError(f"unknown {name} {value!r}; choose from {', '.join(choices)}")


def check_annotated(record) -> None:
    """Refuse any field of the dataclass ``record`` whose value does not fit its annotation.

    The annotations are the one statement of each option's type, so a field added or renamed
    is checked without a list kept beside it.  ``bool`` is not accepted for ``int`` (nor the
    reverse), and ``os.PathLike`` accepts any path object.
    """
    for name, allowed in _field_types(type(record)):
        value = getattr(record, name)
        if not _fits(value, allowed):
            names = " or ".join(_type_name(t) for t in allowed)
            raise BmvsegError(f"{name} must be {names}, got {value!r}")


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, tuple], ...]:
    """Each field of the dataclass ``cls`` and the types its annotation allows (read once)."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, _types(hints[f.name])) for f in fields(cls))


def _types(hint) -> tuple:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _types(arg))
    return (typing.get_origin(hint) or hint,)


def _fits(value, allowed: tuple) -> bool:
    for t in allowed:
        if t is type(None):
            if value is None:
                return True
        elif t is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return True
        elif isinstance(value, t):
            return True
    return False


def _type_name(t) -> str:
    if t is type(None):
        return "None"
    if t is os.PathLike:
        return "a path"
    names = {str: "a string", int: "an integer", bool: "True or False"}
    return names.get(t, f"a {t.__module__}.{t.__qualname__}")
