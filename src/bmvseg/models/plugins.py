"""Models from outside the package: a Python file of the user's, or an installed package.

- ``path/to/model.py:build`` names a function in a file.  **The file is the user's own code and
  runs as code** (it is imported like any module), unlike checkpoints, which stay weights-only.
- Installed packages announce builders in the entry-point group ``bmvseg.models``
  (``[project.entry-points."bmvseg.models"] mynet = "mypkg.seg:build"``); the name then works
  like a built-in one.  The entry point is imported only when that model is built.

A builder is a callable returning a :class:`SegmentationModel` (a function, or the class
itself).  It receives the keywords among ``weights``, ``num_classes`` and ``split`` that its
signature accepts.  One that does not take ``weights`` builds its own (its "default"); a
checkpoint path is then loaded into the model it returns with
:func:`~bmvseg.models.checkpoint.load_checkpoint`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from bmvseg.errors import BmvsegError
from bmvseg.models.base import SegmentationModel
from bmvseg.models.checkpoint import load_checkpoint

GROUP = "bmvseg.models"


def is_file_spec(name: str) -> bool:
    """True for ``something.py:function`` (the file half may contain ``:`` itself)."""
    path, sep, func = name.rpartition(":")
    return bool(sep) and path.endswith(".py") and func.isidentifier()


def file_spec_parts(spec: str) -> tuple[Path, str]:
    """(file, function name) of a ``file.py:function`` spec."""
    path, _, func = spec.rpartition(":")
    return Path(path), func


def _where(exc: BaseException, path: Path) -> str:
    """`` (file.py line N)`` for the deepest frame of ``exc`` inside the user's file."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" ({path.name} line {exc.lineno})"
    return f" ({path.name} line {frames[-1].lineno})" if frames else ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_file_builder(spec: str) -> Callable[..., Any]:
    """Import the file of ``spec`` (running it) and return its builder function."""
    path, func = file_spec_parts(spec)
    path = path.resolve()
    if not path.is_file():
        raise BmvsegError(f"model file not found: {path} (from --model {spec})")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    mod_name = f"bmvseg_user_model_{digest}"
    module = sys.modules.get(mod_name)
    if module is None:
        mod_spec = importlib.util.spec_from_file_location(mod_name, path)
        assert mod_spec is not None and mod_spec.loader is not None
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[mod_name] = module
        try:
            mod_spec.loader.exec_module(module)
        except BmvsegError:
            sys.modules.pop(mod_name, None)
            raise
        except Exception as exc:
            sys.modules.pop(mod_name, None)
            raise BmvsegError(
                f"model file {path} failed to import{_where(exc, path)}: {_one_line(exc)}"
            ) from None
    fn = getattr(module, func, None)
    if not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise BmvsegError(
            f"{path} has no function {func!r}"
            + (f" (it defines: {', '.join(found[:8])})" if found else "")
        )
    return fn


def entry_points() -> dict[str, metadata.EntryPoint]:
    """Installed packages' model builders by name (not imported yet)."""
    return {ep.name: ep for ep in metadata.entry_points(group=GROUP)}


def call_builder(
    fn: Callable[..., Any],
    label: str,
    *,
    weights: Any = "default",
    num_classes: int | None = None,
    split: str | None = None,
    source: Path | None = None,
) -> SegmentationModel:
    """Call a plugin builder with the keywords it accepts (see the module docstring)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    takes = {k for k in ("weights", "num_classes", "split") if var_kw or k in params}
    for key, value in (("split", split), ("num_classes", num_classes)):
        if value is not None and key not in takes:
            raise BmvsegError(f"model {label} does not take {key} (asked for {value!r})")
    kwargs = {k: v for k, v in (("weights", weights), ("num_classes", num_classes),
                                ("split", split)) if k in takes}  # fmt: skip
    try:
        model = fn(**kwargs)
    except BmvsegError:
        raise
    except Exception as exc:
        where = _where(exc, source) if source is not None else ""
        raise BmvsegError(f"model builder {label} failed{where}: {_one_line(exc)}") from None
    if not isinstance(model, SegmentationModel):
        raise BmvsegError(
            f"model builder {label} returned {type(model).__name__}, not a SegmentationModel "
            "(wrap a network with bmvseg.models.split_module)"
        )
    if "weights" not in takes and weights is not None:
        if not (isinstance(weights, str) and weights.lower() in ("default", "none")):
            load_checkpoint(weights, model)
    return model
