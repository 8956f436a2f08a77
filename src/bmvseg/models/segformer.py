"""Hugging Face SegFormer as bmvseg feature network + task network.

``build_model("segformer", weights=HUB_ID_OR_DIR, split="context" | "backbone")`` loads the
checkpoint with ``transformers``' own ``from_pretrained`` (a hub id is fetched and cached by it
where there is a network; a local ``save_pretrained`` directory works offline).  The cut:

- ``context`` (default): features = the all-MLP decoder's fused map (``linear_fuse`` -> BN ->
  ReLU, stride 4, ``decoder_hidden_size`` channels); task = the 1x1 classifier.  An intermediate
  frame then costs one 1x1 conv plus the upsample.
- ``backbone``: features = the four encoder stages (strides 4, 8, 16, 32), each warped at its own
  stride; task = the whole decoder.

Either way ``task(features(x))`` equals the transformers model's logits upsampled bilinearly
(align_corners=False, as its image processor's ``post_process_semantic_segmentation`` does).
Class names come from the config's ``id2label`` (Cityscapes' palette when they are Cityscapes'
19 classes); normalisation from the checkpoint's ``preprocessor_config.json`` when it has one.
Frames are segmented at the video's own size: the processor's fixed resize is a training-time
convenience that would distort a 16:9 frame.

SegFormer's published weights (NVIDIA) carry a non-commercial licence; check it before use.
transformers is an optional extra, imported only when a model is built.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bmvseg.errors import BmvsegError, CheckpointError
from bmvseg.models.base import (
    Features,
    SegmentationModel,
    check_output_conventions,
    default_palette,
)

SPLITS = ("context", "backbone")
INSTALL_HINT = 'pip install -e ".[transformers]"'


def _transformers():
    try:
        import transformers
    except ModuleNotFoundError:
        raise BmvsegError(f"SegFormer models need transformers: {INSTALL_HINT}") from None
    return transformers


class SegformerSeg(SegmentationModel):
    """A ``SegformerForSemanticSegmentation`` cut at ``split`` (see the module docstring)."""

    def __init__(
        self,
        hf: nn.Module,
        split: str = "context",
        *,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        scale: float | None = None,
        void_index: int | None = None,
        class_map: tuple[int | None, ...] | None = None,
    ) -> None:
        super().__init__()
        if split not in SPLITS:
            raise BmvsegError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
        cfg = hf.config
        if not getattr(cfg, "reshape_last_stage", True):
            raise BmvsegError("SegFormer configs with reshape_last_stage=False are not supported")
        self.hf = hf.eval()
        self.split = split
        steps = [int(s) for s in cfg.strides]
        cum = [math.prod(steps[: i + 1]) for i in range(len(steps))]
        self.strides = (cum[0],) if split == "context" else tuple(cum)
        n_raw = int(cfg.num_labels)
        names = tuple(str(cfg.id2label.get(i, f"class{i}")) for i in range(n_raw))
        self.void_index, self.class_map = void_index, class_map
        self.num_classes = check_output_conventions(n_raw, void_index, class_map)
        if class_map is None:  # id2label's names, less the void output's
            self.class_names = tuple(c for i, c in enumerate(names) if i != void_index)
        else:
            self.class_names = tuple(f"class{i}" for i in range(self.num_classes))
        self.palette = default_palette(self.class_names)
        if mean is not None:
            self.mean = tuple(mean)
        if std is not None:
            self.std = tuple(std)
        if scale is not None:
            self.scale = float(scale)

    def _encoder(self, image: torch.Tensor) -> Features:
        out = self.hf.segformer(image, output_hidden_states=True, return_dict=True)
        return tuple(out.hidden_states)

    def features(self, image: torch.Tensor) -> Features:
        stages = self._encoder(image)
        if self.split == "backbone":
            return stages
        head = self.hf.decode_head
        # SegformerDecodeHead.forward up to (not including) its dropout + classifier
        n, size = stages[-1].shape[0], stages[0].shape[2:]
        maps = []
        for x, proj in zip(stages, head.linear_projections, strict=True):
            h, w = x.shape[2:]
            x = proj(x).transpose(1, 2).reshape(n, -1, h, w)
            maps.append(
                nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)
            )
        fused = head.activation(head.batch_norm(head.linear_fuse(torch.cat(maps[::-1], dim=1))))
        return (fused,)

    def logits(self, feats: Features) -> torch.Tensor:
        head = self.hf.decode_head
        raw = head.classifier(head.dropout(feats[0])) if self.split == "context" else head(feats)
        return self.map_outputs(raw)


def _processor_config(weights: str) -> dict[str, Any]:
    """The checkpoint's ``preprocessor_config.json`` as a dict ({} when it has none)."""
    local = Path(weights)
    path: str | Path | None = local / "preprocessor_config.json"
    if not local.is_dir():
        try:
            path = _transformers().utils.cached_file(
                weights, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False
            )
        except Exception:  # offline, gated, or no such file: ImageNet statistics stay
            path = None
    if path is None or not Path(path).is_file():
        return {}
    try:
        cfg = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable image processor config ({exc})") from None
    return cfg if isinstance(cfg, dict) else {}


def _normalisation(proc: dict[str, Any]) -> dict[str, Any]:
    """mean/std/scale keywords for :class:`SegformerSeg` from an image processor config."""
    out: dict[str, Any] = {}
    if proc.get("do_normalize", True):
        for key, name in (("image_mean", "mean"), ("image_std", "std")):
            v = proc.get(key)
            if isinstance(v, (list, tuple)) and len(v) == 3:
                out[name] = tuple(float(x) for x in v)
    else:
        out["mean"], out["std"] = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if not proc.get("do_rescale", True):
        out["scale"] = 1.0
    elif isinstance(proc.get("rescale_factor"), (int, float)):
        out["scale"] = float(proc["rescale_factor"])
    return out


def _looks_local(weights: str) -> bool:
    """A path, not a hub id ("org/name"): absolute, relative with ./ ../ ~, or deeper."""
    return (
        Path(weights).expanduser().is_absolute()
        or weights.startswith((".", "~"))
        or (weights.count("/") > 1)
    )


def build_segformer(
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    split: str | None = None,
    void_index: int | None = None,
    class_map: tuple[int | None, ...] | None = None,
) -> SegformerSeg:
    """A SegFormer from a hub id or ``save_pretrained`` directory, cut at ``split`` (default
    ``context``); eval mode.  Other architectures are refused by name."""
    if weights is None or (isinstance(weights, str) and weights.lower() in ("default", "none")):
        raise BmvsegError(
            "segformer needs weights: a Hugging Face hub id (e.g. "
            "nvidia/segformer-b0-finetuned-cityscapes-1024-1024) or a save_pretrained directory"
        )
    tf = _transformers()
    weights = str(weights)
    if _looks_local(weights) and not Path(weights).is_dir():
        raise CheckpointError(
            f"cannot read a transformers config from {weights}: no such directory "
            "(expected a save_pretrained directory or a hub id such as nvidia/segformer-b0-...)"
        )
    try:
        config = tf.AutoConfig.from_pretrained(weights)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read a transformers config from {weights}: {first}"
        ) from None
    if config.model_type != "segformer":
        raise BmvsegError(
            f"{weights} is a transformers {config.model_type!r} model; bmvseg cuts only SegFormer "
            "by name: wrap other networks with bmvseg.models.split_module(module, cut=...)"
        )
    if num_classes is not None and num_classes != config.num_labels:
        raise CheckpointError(f"{weights} has {config.num_labels} labels, not {num_classes}")
    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # its per-tensor loading bar is noise on our stdout
    try:
        hf = tf.SegformerForSemanticSegmentation.from_pretrained(weights)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load SegFormer weights from {weights}: {first}") from None
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    return SegformerSeg(
        hf,
        split or "context",
        void_index=void_index,
        class_map=class_map,
        **_normalisation(_processor_config(weights)),
    )


def _register() -> None:
    from bmvseg.models.registry import register

    register("segformer", build_segformer, handles_weights=True, splits=SPLITS, overwrite=True)


_register()
