"""Every option of a run in one validated record (the CLI and the Python API both build it)."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

from bmvseg.errors import BmvsegError
from bmvseg.models.base import SegmentationModel
from bmvseg.schemes.engine import EngineConfig
from bmvseg.video.reader import POLICIES

DEFAULT_MODEL = "enet_lite"


@dataclass
class RunOptions:
    """What a run needs besides the video.  Defaults are the CLI's defaults."""

    model: str | SegmentationModel = DEFAULT_MODEL  # a name, "file.py:build", or an object
    weights: str | os.PathLike | None = "default"  # "default", a checkpoint/hub id, None/"none"
    split: str | None = None  # where the model is cut (None: its default)
    device: str = "cpu"
    motion: str = "auto"  # motion policy (bmvseg.video.reader)
    stream: int | None = None  # which video stream (None: the reader's choice)
    scheme: str = "inter-bmv"
    interval: int = 5
    phase: int = 0
    fusion: str = "avg"  # avg stays the default: max collapses on models with signed features
    fusion_weights: str | os.PathLike | None = None  # conv fusion (None: beside the weights)
    keyframes: str = "fixed"
    max_interval: int | None = None
    accumulate: bool = False
    flow_preset: str = "fast"
    label_stride: int = 1

    def engine_config(self, **extra) -> EngineConfig:
        """The engine's share of the options (validated)."""
        names = {f.name for f in fields(EngineConfig)}
        cfg = EngineConfig(**{k: v for k, v in self._values().items() if k in names}, **extra)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Refuse what no run could honour, naming the option, before anything is built."""
        if not isinstance(self.model, (str, SegmentationModel)):
            raise BmvsegError(
                f"model must be a name or a SegmentationModel, got {type(self.model).__name__}"
            )
        if self.motion not in POLICIES:
            raise BmvsegError(f"unknown motion policy {self.motion!r}; use {', '.join(POLICIES)}")
        if self.stream is not None and (not isinstance(self.stream, int) or self.stream < 0):
            raise BmvsegError(f"stream must be a stream number >= 0, got {self.stream!r}")
        if self.max_interval is not None and (
            not isinstance(self.max_interval, int) or self.max_interval < self.interval
        ):
            raise BmvsegError(
                f"max_interval must be an integer >= the interval, got {self.max_interval!r}"
            )
        self.engine_config()

    def identity(self) -> dict:
        """The options that change the labels (what ``--resume`` must find unchanged)."""
        out = self._values()
        out.pop("device")
        out["model"] = self.model if isinstance(self.model, str) else type(self.model).__name__
        for key in ("weights", "fusion_weights"):
            out[key] = None if out[key] is None else str(out[key])
        return out

    def _values(self) -> dict:
        """The fields as a dict (``dataclasses.asdict`` would deep-copy a model object)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
