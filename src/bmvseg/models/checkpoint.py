"""Model files: fp16 weights plus metadata, loaded without ever unpickling code.

A checkpoint is a ``torch.save``d dict ``{"format": "bmvseg-checkpoint", "version": 1,
"state_dict": {name: tensor}, "meta": {...}}``.  Floating-point tensors are stored in fp16 (half
the size; the accuracy loss for inference is negligible) and cast back to each parameter's dtype
on load.  ``meta`` holds at least ``architecture``, ``num_classes``, ``class_names`` and
``palette``; training adds the command, time and metrics.

Loading uses ``torch.load(..., weights_only=True)`` only: a file whose pickle would construct
arbitrary objects (run code) is refused with :class:`CheckpointError`, never executed (and
without torch's own warnings about the pickle).  ``meta`` is validated before anything is built
from it (:func:`validate_meta`): a class count of 10**12 must be refused, not allocated.

A plain PyTorch ``state_dict`` (``torch.save(model.state_dict())`` as published; also wrapped
in ``{"state_dict": ...}`` or ``{"model": ...}``, or with ``DataParallel``'s ``module.``
prefix) loads like PyTorch's strict ``load_state_dict``: every key must match, except
BatchNorm's ``num_batches_tracked``, which PyTorch also fills in when a file predates it.  Its
tensors keep their precision (only :func:`save_checkpoint` stores fp16).

Inference, the fast way on CPU::

    model = build_model("enet_lite")              # loads the shipped weights, eval mode
    model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        logits = model(model.preprocess(rgb))     # preprocess returns channels_last
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bmvseg.errors import CheckpointError

FORMAT = "bmvseg-checkpoint"
MAX_CLASSES = 1000  # more outputs than any segmentation label set; bounds what a file may ask for
OPTIONAL_KEY = "num_batches_tracked"  # the one key PyTorch's strict loading lets a file lack


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file then rename, so a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; weights are shipped and shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _to_plain(value: Any) -> Any:
    """Metadata as types ``weights_only`` loading accepts (numpy arrays become lists)."""
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model``'s weights (floats as fp16) and ``meta`` atomically to ``path``."""
    state = {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).cpu().contiguous()
        for k, v in model.state_dict().items()
    }
    full_meta = {
        "architecture": type(model).__name__,
        "num_classes": getattr(model, "num_classes", None),
        "class_names": list(getattr(model, "class_names", []) or []),
        "palette": getattr(model, "palette", None),
    }
    full_meta.update(meta)
    atomic_save(
        {"format": FORMAT, "version": 1, "state_dict": state, "meta": _to_plain(full_meta)}, path
    )


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a bmvseg checkpoint dict safely; :class:`CheckpointError` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about plain pickles before refusing them
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message advises weights_only=False, the unsafe option: keep only what it found.
        found = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln]
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain-weights checkpoint "
            f"(loading it would need to unpickle code{': ' + found[0] if found else ''})"
        ) from None
    except Exception as exc:  # zip/format errors: not a torch file at all
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"cannot read {path} as a checkpoint (not a PyTorch weights file: "
            f"{type(exc).__name__}: {first})"
        ) from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if not isinstance(obj.get("state_dict"), dict):
            raise CheckpointError(f"{path}: its 'state_dict' is not a dict of tensors")
        if obj.get("meta") is None:
            obj["meta"] = {}
        validate_meta(obj["meta"], path)
        return obj
    state = _plain_state_dict(obj)
    if state is not None:
        return {"format": FORMAT, "version": 0, "state_dict": state, "meta": {}}
    raise CheckpointError(f"{path} is not a bmvseg checkpoint (no weights found in it)")


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _plain_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    """The weights of a published PyTorch file: a bare ``state_dict``, or one wrapped the usual
    ways (``{"state_dict": ...}`` / ``{"model": ...}`` beside epoch counters; ``module.``
    prefixes of ``DataParallel``); None when there are none."""
    if isinstance(obj, dict) and not _is_tensor_dict(obj):
        obj = next((obj[k] for k in ("state_dict", "model") if _is_tensor_dict(obj.get(k))), None)
    if not _is_tensor_dict(obj):
        return None
    if all(isinstance(k, str) and k.startswith("module.") for k in obj):
        return {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_meta(meta: Any, path: str | Path) -> None:
    """Refuse metadata of the wrong type or range with a :class:`CheckpointError` naming it.

    ``num_classes``: an int in [1, MAX_CLASSES] or None; ``class_names``: strings, one per class
    (or empty); ``palette``: ``(num_classes, 3)`` integers 0..255 (or None).
    """
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its 'meta' is a {type(meta).__name__}, not a dict")
    n = meta.get("num_classes")
    if n is not None and not (_is_int(n) and 1 <= n <= MAX_CLASSES):
        raise CheckpointError(
            f"{path}: num_classes must be an integer in [1, {MAX_CLASSES}], not {n!r:.40}"
        )
    names = meta.get("class_names")
    if names is not None:
        if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names):
            raise CheckpointError(f"{path}: class_names must be strings, not {names!r:.60}")
        if names and n is not None and len(names) != n:
            raise CheckpointError(f"{path}: {len(names)} class_names for num_classes={n}")
        n = n if n is not None or not names else len(names)
    pal = meta.get("palette")
    if pal is not None:
        rows = pal if isinstance(pal, (list, tuple)) else None
        ok = rows is not None and all(
            isinstance(r, (list, tuple))
            and len(r) == 3
            and all(_is_int(v) and 0 <= v < 256 for v in r)
            for r in rows
        )
        if not ok:
            raise CheckpointError(
                f"{path}: palette must be rows of 3 integers 0..255, not {pal!r:.50}"
            )
        if n is not None and len(rows) != n:
            raise CheckpointError(f"{path}: palette has {len(rows)} rows for {n} classes")


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load weights from ``path`` into ``model`` in place and return the checkpoint's metadata.

    Checks before touching the model: the class count and every parameter name and shape must
    match; a mismatch raises :class:`CheckpointError` naming the key and both shapes.  Class
    names and palette stored in the file are set on the model.
    """
    ckpt = read_checkpoint(path)
    meta = ckpt.get("meta", {}) or {}
    n = getattr(model, "num_classes", None)
    if meta.get("num_classes") is not None and n is not None and meta["num_classes"] != n:
        raise CheckpointError(
            f"{path} has {meta['num_classes']} classes but the model has {n} "
            f"(checkpoint architecture: {meta.get('architecture', '?')})"
        )
    arch = meta.get("architecture")
    if arch and arch != type(model).__name__:
        raise CheckpointError(f"{path} is for architecture {arch}, not {type(model).__name__}")
    src, dst = dict(ckpt["state_dict"]), model.state_dict()
    missing = [k for k in dst if k not in src and k.rsplit(".", 1)[-1] != OPTIONAL_KEY]
    unexpected = [k for k in src if k not in dst]
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match {type(model).__name__}: "
            f"missing keys {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected keys {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    for k, v in dst.items():
        if k in src and src[k].shape != v.shape:
            raise CheckpointError(
                f"{path} does not match {type(model).__name__}: key {k!r} has shape "
                f"{tuple(src[k].shape)} in the file but the model expects {tuple(v.shape)}"
            )
    # a plain dict (no ``_metadata``): BatchNorm fills a missing num_batches_tracked, as PyTorch
    # does for files that predate it; everything else is strict
    model.load_state_dict({k: src[k].to(dst[k].dtype) for k in dst if k in src}, strict=True)
    if meta.get("class_names"):
        model.class_names = tuple(meta["class_names"])
    if meta.get("palette") is not None:
        import numpy as np

        model.palette = np.asarray(meta["palette"], np.uint8)
    return meta
