"""Every option of a run in one validated record (the CLI and the Python API both build it).

:class:`RunOptions` holds the run's own options (model, weights, device, reader) and one
:class:`~bmvseg.schemes.config.EngineConfig` (scheme, interval, fusion, ...), whose defaults
are the only ones: ``RunOptions(scheme="prop-bmv", interval=3)`` hands the engine's keywords to
``EngineConfig`` itself, so a misspelt or renamed keyword is refused, never dropped.  Both are
checked once, on construction (every keyword against its type, one ``BmvsegError`` naming it),
and frozen: :meth:`RunOptions.replace` makes a changed copy, checked again.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import torch

from bmvseg.errors import BmvsegError
from bmvseg.models.base import SegmentationModel
from bmvseg.schemes.config import EngineConfig, check_annotated
from bmvseg.video.motion_source import POLICIES

DEFAULT_MODEL = "enet_lite"
ENGINE_FIELDS = tuple(f.name for f in fields(EngineConfig))
# Engine fields that change what a run returns but not its labels: no part of its identity.
_NOT_IDENTITY = ("keep_logits", "keep_features")


@dataclass(frozen=True, init=False)
class RunOptions:
    """What a run needs besides the video.  Defaults are the CLI's defaults.

    Engine options (see :class:`EngineConfig`) are given as keywords or as ``engine=`` and read
    back as attributes (``options.scheme``, ``options.interval``, ...).
    """

    model: str | SegmentationModel = DEFAULT_MODEL  # a name, "file.py:build", or an object
    weights: str | os.PathLike | None = "default"  # "default", a checkpoint/hub id, None/"none"
    split: str | None = None  # where the model is cut (None: its default)
    device: str | torch.device = "cpu"
    motion: str = "auto"  # motion policy (bmvseg.video.reader)
    stream: int | None = None  # which video stream (None: the reader's choice)
    fusion_weights: str | os.PathLike | None = None  # conv fusion (None: beside the weights)
    # The overlay's colours: a JSON file or a mapping of class id or name -> [r, g, b] (None:
    # the model's own).  Not part of the identity: it changes no label.
    palette: str | os.PathLike | Mapping | None = None
    engine: EngineConfig = field(default_factory=EngineConfig)

    def __init__(self, engine: EngineConfig | None = None, **options) -> None:
        own = {f.name for f in fields(self)} - {"engine"}
        unknown = sorted(set(options) - own - set(ENGINE_FIELDS))
        if unknown:
            raise BmvsegError(
                f"unknown option(s) {', '.join(unknown)}; the options are "
                f"{', '.join(sorted(own | set(ENGINE_FIELDS)))}"
            )
        engine_options = {k: v for k, v in options.items() if k not in own}
        if engine is not None and not isinstance(engine, EngineConfig):
            raise BmvsegError(f"engine must be an EngineConfig, got {type(engine).__name__}")
        if engine is None:
            engine = EngineConfig(**engine_options)
        elif engine_options:
            engine = dataclasses.replace(engine, **engine_options)
        for f in fields(self):
            if f.name != "engine":
                object.__setattr__(self, f.name, options.get(f.name, f.default))
        object.__setattr__(self, "engine", engine)
        check_annotated(self)
        if self.motion not in POLICIES:
            raise BmvsegError(f"unknown motion policy {self.motion!r}; use {', '.join(POLICIES)}")
        if self.stream is not None and self.stream < 0:
            raise BmvsegError(f"stream must be a stream number >= 0, got {self.stream!r}")

    def __getattr__(self, name: str):
        """The engine's options read as the run's own (``options.scheme``)."""
        if name in ENGINE_FIELDS:
            return getattr(self.engine, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def replace(self, **changes) -> RunOptions:
        """A copy with ``changes`` (own or engine options), checked as a new one is."""
        own = {f.name: getattr(self, f.name) for f in fields(self)}
        return RunOptions(**{**own, **changes})

    def engine_config(self, **extra) -> EngineConfig:
        """The engine's share of the options, with ``extra`` engine fields changed."""
        return dataclasses.replace(self.engine, **extra) if extra else self.engine

    def identity(self) -> dict:
        """The options that change the labels (what ``--resume`` must find unchanged)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "engine"}
        out.pop("device")
        out.pop("palette")
        out.update({k: v for k, v in dataclasses.asdict(self.engine).items()
                    if k not in _NOT_IDENTITY})  # fmt: skip
        out["model"] = self.model if isinstance(self.model, str) else type(self.model).__name__
        for key in ("weights", "fusion_weights"):
            out[key] = None if out[key] is None else str(out[key])
        return out
