"""Datasets by name, so ``bmvseg train --dataset NAME`` works for any dataset that follows the
interface of :class:`bmvseg.data.camvid.CamVid`: ``ds[i] -> (rgb uint8 (H,W,3), labels uint8
(H,W), 255 = void)``, ``len(ds)``, and attributes ``class_names`` and ``palette``.

To add one: ``register_dataset("name", factory)`` where ``factory(root, split, **kw)`` returns such
a dataset; or add it to ``_BUILTIN`` below (module path + class name, imported lazily).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bmvseg.errors import BmvsegError

_BUILTIN: dict[str, str] = {
    "camvid": "bmvseg.data.camvid:CamVid",
    "cityscapes": "bmvseg.data.cityscapes:Cityscapes",
    "synthetic": "bmvseg.data.synthetic:SyntheticDataset",
}
_FACTORIES: dict[str, Callable[..., Any]] = {}


def register_dataset(name: str, factory: Callable[..., Any]) -> None:
    """Make ``get_dataset(name, root, split)`` call ``factory(root, split, **kw)``."""
    _FACTORIES[name] = factory


def available_datasets() -> list[str]:
    """Names ``get_dataset`` accepts (for messages and choices)."""
    return sorted(set(_BUILTIN) | set(_FACTORIES))


def get_dataset(name: str, root: str | Path | None, split: str, **kw: Any) -> Any:
    """The ``split`` of dataset ``name`` under ``root``; :class:`BmvsegError` if unknown."""
    if name in _FACTORIES:
        return _FACTORIES[name](root, split, **kw)
    if name not in _BUILTIN:
        raise BmvsegError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    mod, cls = _BUILTIN[name].split(":")
    try:
        factory = getattr(importlib.import_module(mod), cls)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise BmvsegError(f"dataset {name!r} is not available in this build: {exc}") from None
    return factory(root, split, **kw)
