"""Checks of a SegFormer checkpoint's ``config.json`` and image-processor config, before building.

transformers accepts many configs it cannot build from (``id2label`` as a list, ``num_labels``
as a string) and builds some that run wrong (``image_std`` of zeros makes every label 0; sizes
that do not match the weights leave layers randomly initialised or fail deep in loading).
Each check here ends in one :class:`~bmvseg.errors.CheckpointError` line naming the file and
the field, so a user sees what to fix in the JSON instead of a traceback or wrong labels.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bmvseg.errors import CheckpointError

MAX_LABELS = 256  # labels are written as uint8 ids


def read_json(path: str | Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; one error line when it is unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable {what} ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the {what} is a JSON {type(data).__name__}, not an object")
    return data


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _positive_ints(cfg: dict[str, Any], key: str, n: int | None, where: str) -> list[int] | None:
    v = cfg.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(_is_int(x) and x > 0 for x in v):
        raise CheckpointError(f"{where}: {key} must be a list of positive integers, not {v!r}")
    if n is not None and len(v) != n:
        raise CheckpointError(f"{where}: {key} has {len(v)} entries but num_encoder_blocks is {n}")
    return v


def check_config(cfg: dict[str, Any], where: str) -> int:
    """Validate a SegFormer ``config.json`` (``where`` names it); returns its number of labels."""
    model_type = cfg.get("model_type")
    if model_type != "segformer":
        raise CheckpointError(
            f"{where}: model_type is {model_type!r}, not 'segformer'; bmvseg cuts only SegFormer "
            "by name: wrap other networks with bmvseg.models.split_module(module, cut=...)"
        )
    id2label = cfg.get("id2label")
    n_names = None
    if id2label is not None:
        if not isinstance(id2label, dict):
            raise CheckpointError(
                f'{where}: id2label must be an object {{"0": "name", ...}}, '
                f"not a {type(id2label).__name__}"
            )
        try:
            ids = sorted(int(k) for k in id2label)
        except (TypeError, ValueError):
            raise CheckpointError(f"{where}: id2label keys must be class ids 0, 1, ...") from None
        if ids != list(range(len(ids))):
            raise CheckpointError(f"{where}: id2label keys must be the ids 0..{len(ids) - 1}")
        n_names = len(ids)
    n = cfg.get("num_labels", n_names)
    if n is None:
        raise CheckpointError(f"{where}: num_labels is missing (and there is no id2label)")
    if not _is_int(n) or not 1 <= n <= MAX_LABELS:
        raise CheckpointError(f"{where}: num_labels must be an integer 1..{MAX_LABELS}, not {n!r}")
    if n_names is not None and n_names != n:
        raise CheckpointError(f"{where}: num_labels is {n} but id2label names {n_names} classes")
    blocks = cfg.get("num_encoder_blocks", 4)
    if not _is_int(blocks) or not 1 <= blocks <= 8:
        raise CheckpointError(f"{where}: num_encoder_blocks must be 1..8, not {blocks!r}")
    for key in ("hidden_sizes", "strides", "depths", "num_attention_heads", "patch_sizes"):
        _positive_ints(cfg, key, blocks, where)
    dec = cfg.get("decoder_hidden_size")
    if dec is not None and not (_is_int(dec) and dec > 0):
        raise CheckpointError(
            f"{where}: decoder_hidden_size must be a positive integer, not {dec!r}"
        )
    channels = cfg.get("num_channels", 3)
    if channels != 3:
        raise CheckpointError(f"{where}: num_channels is {channels!r}; video frames have 3")
    return n


# parameter name -> (config keys of its expected shape's leading dims)
def _expected_shapes(cfg: dict[str, Any], n_labels: int) -> dict[str, tuple[tuple[int, str], ...]]:
    dec = cfg.get("decoder_hidden_size", 256)
    hidden = cfg.get("hidden_sizes", [32, 64, 160, 256])
    out: dict[str, tuple[tuple[int, str], ...]] = {
        "decode_head.classifier.weight": ((n_labels, "num_labels"), (dec, "decoder_hidden_size")),
        "decode_head.linear_fuse.weight": ((dec, "decoder_hidden_size"),),
    }
    for i, h in enumerate(hidden):
        out[f"segformer.encoder.patch_embeddings.{i}.proj.weight"] = ((h, "hidden_sizes"),)
        out[f"decode_head.linear_c.{i}.proj.weight"] = (
            (dec, "decoder_hidden_size"), (h, "hidden_sizes"),
        )  # fmt: skip
    return out


def check_weights_match(folder: Path, cfg: dict[str, Any], n_labels: int, where: str) -> None:
    """Compare the config's sizes with a local ``model.safetensors``' tensor shapes (read from
    its header only); a checkpoint in another format is left to transformers' own check."""
    path = folder / "model.safetensors"
    if not path.is_file():
        return
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # a damaged file: transformers' loading names it
        raise CheckpointError(f"{path}: unreadable weights ({type(exc).__name__}: {exc})") from None
    for name, dims in _expected_shapes(cfg, n_labels).items():
        shape = shapes.get(name)
        if shape is None:
            continue
        for axis, (want, key) in enumerate(dims):
            if axis < len(shape) and shape[axis] != want:
                raise CheckpointError(
                    f"{where}: {key} says {want} but the weights' {name} has {shape[axis]} "
                    "(the config does not belong to these weights)"
                )


def _triple(proc: dict[str, Any], key: str, where: str) -> tuple[float, float, float] | None:
    v = proc.get(key)
    if v is None:
        return None
    if _is_number(v):
        v = [v, v, v]
    if not isinstance(v, Sequence) or isinstance(v, str) or len(v) != 3:
        raise CheckpointError(f"{where}: {key} must be 3 numbers (one per channel), not {v!r}")
    if not all(_is_number(x) for x in v):
        raise CheckpointError(f"{where}: {key} must be 3 numbers (one per channel), not {v!r}")
    return (float(v[0]), float(v[1]), float(v[2]))


def normalisation(proc: dict[str, Any], where: str) -> dict[str, Any]:
    """mean/std/scale keywords for the model from an image-processor config, validated."""
    for key in ("do_normalize", "do_rescale"):
        if key in proc and not isinstance(proc[key], bool):
            raise CheckpointError(f"{where}: {key} must be true or false, not {proc[key]!r}")
    out: dict[str, Any] = {}
    if proc.get("do_normalize", True):
        mean, std = _triple(proc, "image_mean", where), _triple(proc, "image_std", where)
        if std is not None and min(std) <= 0:
            raise CheckpointError(
                f"{where}: image_std must be > 0 for every channel, not {list(std)} "
                "(a zero divides every pixel by zero)"
            )
        if mean is not None:
            out["mean"] = mean
        if std is not None:
            out["std"] = std
    else:
        out["mean"], out["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if not proc.get("do_rescale", True):
        out["scale"] = 1.0
    elif "rescale_factor" in proc:
        factor = proc["rescale_factor"]
        if not _is_number(factor) or factor <= 0:
            raise CheckpointError(f"{where}: rescale_factor must be a number > 0, not {factor!r}")
        out["scale"] = float(factor)
    return out
