"""Models by name: ``build_model("enet_lite")`` and a ``register`` hook for other modules.

A builder is a keyword-only function ``builder(*, num_classes: int | None) -> SegmentationModel``
returning a randomly initialised model (``num_classes=None`` = the builder's own default set).
``build_model`` then resolves ``weights``:

- ``"default"``: the file ``bmvseg/weights/<name>.pt`` shipped in the package, or the path given
  to ``register(..., default_weights=...)``.  A model without shipped weights raises
  :class:`CheckpointError` rather than silently returning an untrained network.
- ``None`` or ``"none"``: random initialisation.
- anything else: a checkpoint path, loaded with :func:`load_checkpoint`; its class count is
  used when ``num_classes`` is None.

Builders that resolve weights themselves (torchvision's ``DEFAULT`` download) register with
``handles_weights=True`` and receive ``weights=`` as given.  Builders whose cut between feature
and task network is a choice register the names with ``splits=``; ``build_model(..., split=)``
passes one on (None = the builder's default) and refuses it for models without a choice.

Besides registered names, ``build_model`` takes ``path/to/model.py:function`` and the names
installed packages announce in the entry-point group ``bmvseg.models`` (see
:mod:`bmvseg.models.plugins`: such a file is the user's code and runs as code).  Unknown names
are refused with the list of what exists.

Per-model files (conv-fusion weights) live beside the model's weights, never in the installed
package except for the shipped models' own: :func:`fusion_weights_for`.

The returned model is in eval mode on ``device``; callers add channels_last and inference mode
(see :mod:`bmvseg.models.checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bmvseg.errors import BmvsegError, CheckpointError
from bmvseg.models import plugins
from bmvseg.models.base import SegmentationModel
from bmvseg.models.checkpoint import load_checkpoint, read_checkpoint

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

Builder = Callable[..., SegmentationModel]


@dataclass(frozen=True)
class _Entry:
    builder: Builder
    default_weights: Path | None
    handles_weights: bool
    splits: tuple[str, ...]
    plugin: bool = False  # an installed package's entry point: called via plugins.call_builder


_REGISTRY: dict[str, _Entry] = {}
_BUILTINS_LOADED = False


def register(
    name: str,
    builder: Builder,
    *,
    default_weights: str | Path | None = None,
    handles_weights: bool = False,
    splits: tuple[str, ...] = (),
    overwrite: bool = False,
) -> None:
    """Make ``build_model(name)`` call ``builder``; re-registering needs ``overwrite=True``."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"model {name!r} is already registered")
    dw = Path(default_weights) if default_weights is not None else None
    _REGISTRY[name] = _Entry(builder, dw, handles_weights, tuple(splits))


def _load_builtins() -> None:
    """Register the models of this package (imported lazily to keep ``import bmvseg`` light)."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from bmvseg.models.enet import build_enet_lite

    register("enet_lite", build_enet_lite, overwrite=True)
    # The same architecture trained on generated street scenes (the demo's model).
    register("synthetic_demo", build_enet_lite, overwrite=True)
    import importlib

    # Optional modules of other parts of the package register their own builders on import.
    for mod in ("bmvseg.models.torchvision_seg", "bmvseg.models.segformer"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name not in (mod, "torchvision"):
                raise
    for name, ep in plugins.entry_points().items():
        if name not in _REGISTRY:  # built-in names win over an installed package's
            _REGISTRY[name] = _Entry(_entry_point_builder(ep), None, True, (), plugin=True)


def _entry_point_builder(ep) -> Builder:
    def build(**kwargs):
        try:
            fn = ep.load()
        except Exception as exc:
            raise BmvsegError(
                f"model {ep.name!r} (entry point {ep.value}) cannot be imported: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return plugins.call_builder(fn, f"{ep.name!r} ({ep.value})", **kwargs)

    return build


def available_models() -> list[str]:
    """Names ``build_model`` accepts, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def default_weights_path(name: str) -> Path | None:
    """The shipped weights file for ``name``, or None if it has none."""
    _load_builtins()
    entry = _REGISTRY.get(name)
    if entry is None:
        return None
    path = entry.default_weights or WEIGHTS_DIR / f"{name}.pt"
    return path if path.is_file() else None


def build_model(
    name: str,
    *,
    weights: str | Path | None = "default",
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    split: str | None = None,
) -> SegmentationModel:
    """Build model ``name`` with ``weights`` resolved as in the module docstring; eval mode."""
    _load_builtins()
    if plugins.is_file_spec(name):
        fn = plugins.load_file_builder(name)
        path, _ = plugins.file_spec_parts(name)
        model = plugins.call_builder(fn, name, weights=weights, num_classes=num_classes,
                                     split=split, source=path.resolve())  # fmt: skip
        return model.to(device).eval()
    if name not in _REGISTRY:
        raise BmvsegError(
            f"unknown model {name!r}; available: {', '.join(available_models())}, "
            "or a file of your own: path/to/model.py:function"
        )
    entry = _REGISTRY[name]
    if entry.plugin:
        model = entry.builder(weights=weights, num_classes=num_classes, split=split)
        return model.to(device).eval()
    extra = {}
    if split is not None:
        if split not in entry.splits:
            choices = f"one of {', '.join(entry.splits)}" if entry.splits else "not a choice"
            raise BmvsegError(f"split {split!r} for model {name!r}: its split is {choices}")
        extra["split"] = split
    if num_classes is None and weights is not None and not entry.handles_weights:
        if not (isinstance(weights, str) and weights.lower() in ("default", "none")):
            # a checkpoint path decides the class count when the caller does not
            num_classes = read_checkpoint(weights).get("meta", {}).get("num_classes")
    if entry.handles_weights:
        model = entry.builder(num_classes=num_classes, weights=weights, **extra)
    else:
        model = entry.builder(num_classes=num_classes, **extra)
        if isinstance(weights, str) and weights.lower() == "none":
            weights = None
        if isinstance(weights, str) and weights == "default":
            path = default_weights_path(name)
            if path is None:
                raise CheckpointError(
                    f"model {name!r} has no shipped weights (looked for {WEIGHTS_DIR / name}.pt); "
                    "pass a checkpoint path, or weights=None for random initialisation"
                )
            weights = path
        if weights is not None:
            load_checkpoint(weights, model)
    return model.to(device).eval()


def _beside(weights: Path) -> Path:
    """``<stem>.fusion.pt`` next to a weights file, ``<name>.fusion.pt`` next to a directory."""
    if weights.is_dir():
        return weights.parent / f"{weights.name}.fusion.pt"
    return weights.with_name(f"{weights.stem}.fusion.pt")


def fusion_weights_home(model: str, weights: str | Path | None = "default") -> Path | None:
    """Where conv-fusion weights for ``model`` built with ``weights`` belong (whether or not they
    exist yet), the default output of ``train-fusion``:

    - a weights file or directory: beside it (``w.pt`` -> ``w.fusion.pt``, ``dir`` ->
      ``dir.fusion.pt``);
    - a shipped model with its shipped weights: the package's own ``<name>.fusion.pt``;
    - a model file ``m.py:build`` building its own weights: beside the file (``m.fusion.pt``);
    - otherwise (a hub id, torchvision's download, random weights): None, pass a path.
    """
    if weights is not None and not (isinstance(weights, str) and weights.lower() in
                                    ("default", "none")) and Path(weights).exists():  # fmt: skip
        return _beside(Path(weights))
    if isinstance(weights, str) and weights == "default":
        if plugins.is_file_spec(model):
            return _beside(plugins.file_spec_parts(model)[0])
        if default_weights_path(model) is not None:
            return WEIGHTS_DIR / f"{model}.fusion.pt"
    return None


def fusion_weights_for(model: str, weights: str | Path | None = "default") -> Path | None:
    """The conv-fusion weights file for ``model`` + ``weights`` if it exists (see
    :func:`fusion_weights_home`), else None."""
    path = fusion_weights_home(model, weights)
    return path if path is not None and path.is_file() else None
