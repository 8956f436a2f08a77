"""Models: the feature/task interface, the registry, and ways to bring your own network.

Names are imported on first use (``import bmvseg.models`` stays light): ``split_module`` (any
PyTorch network, :mod:`bmvseg.models.split`), ``build_model`` / ``available_models`` /
``register`` / ``fusion_weights_for`` (:mod:`bmvseg.models.registry`), ``SegmentationModel``
(:mod:`bmvseg.models.base`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "split_module": "bmvseg.models.split",
    "SplitModel": "bmvseg.models.split",
    "build_model": "bmvseg.models.registry",
    "available_models": "bmvseg.models.registry",
    "register": "bmvseg.models.registry",
    "fusion_weights_for": "bmvseg.models.registry",
    "fusion_weights_home": "bmvseg.models.registry",
    "SegmentationModel": "bmvseg.models.base",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bmvseg.models' has no attribute {name!r}")
