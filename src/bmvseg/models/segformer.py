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

import math
from pathlib import Path

import torch
from torch import nn

from bmvseg.errors import BmvsegError, CheckpointError
from bmvseg.models.base import (
    Features,
    SegmentationModel,
    check_output_conventions,
    default_palette,
)
from bmvseg.models.segformer_config import (
    check_config,
    check_weights_match,
    normalisation,
    read_json,
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


def _hub_file(weights: str, name: str, online: bool) -> Path | None:
    """``name`` of hub checkpoint ``weights`` from transformers' cache, else (``online``) from
    the hub; None when neither has it."""
    tf = _transformers()
    for local_only in (True, False) if online else (True,):
        try:
            path = tf.utils.cached_file(
                weights, name, local_files_only=local_only,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
            )  # fmt: skip
        except OSError as exc:
            if local_only:
                continue
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"cannot read a transformers config from {weights}: {first}"
            ) from None
        if path is not None:
            return Path(path)
    return None


def _hub_unreachable() -> str | None:
    """Why the hub cannot be used now (None: it can), found at once: transformers itself
    retries an unreachable hub for about 30 s before it says so."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "offline mode (HF_HUB_OFFLINE)"
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=3).close()
    except OSError as exc:
        return f"{url.hostname} cannot be reached ({exc.strerror or exc})"
    return None


def _config_files(weights: str) -> tuple[Path, Path | None, bool]:
    """(config.json, preprocessor_config.json or None, whether the weights may be fetched from
    the hub) of a directory or a hub id."""
    local = Path(weights).expanduser()
    if local.is_dir():
        proc = local / "preprocessor_config.json"
        return local / "config.json", proc if proc.is_file() else None, False
    if _looks_local(weights):
        raise CheckpointError(
            f"cannot read a transformers config from {weights}: no such directory "
            "(expected a save_pretrained directory or a hub id such as nvidia/segformer-b0-...)"
        )
    why = _hub_unreachable()
    config = _hub_file(weights, "config.json", online=why is None)
    if config is None:
        where = f"not in the Hugging Face cache, and {why}" if why else "no config.json on the hub"
        raise CheckpointError(f"{weights}: no such directory, {where}")
    return config, _hub_file(weights, "preprocessor_config.json", why is None), why is None


def _looks_local(weights: str) -> bool:
    """Not a hub id ("org/name"): absolute, relative with ./ ../ ~, deeper or shallower than
    org/name, or inside a directory that exists here."""
    parts = weights.split("/")
    return (
        Path(weights).expanduser().is_absolute()
        or weights.startswith((".", "~"))
        or len(parts) != 2
        or Path(parts[0]).is_dir()
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
    ``context``); eval mode.  Other architectures are refused by name; the configs are
    checked first (:mod:`bmvseg.models.segformer_config`)."""
    if weights is None or (isinstance(weights, str) and weights.lower() in ("default", "none")):
        raise BmvsegError(
            "segformer needs weights: a Hugging Face hub id (e.g. "
            "nvidia/segformer-b0-finetuned-cityscapes-1024-1024) or a save_pretrained directory"
        )
    tf = _transformers()
    weights = str(weights)
    config_path, proc_path, online = _config_files(weights)
    if not config_path.is_file():
        raise CheckpointError(f"cannot read a transformers config from {weights}: no config.json")
    raw = read_json(config_path, "transformers config")
    n_labels = check_config(raw, str(config_path))
    check_weights_match(config_path.parent, raw, n_labels, str(config_path))  # where cached
    norm = {}
    if proc_path is not None:
        norm = normalisation(read_json(proc_path, "image processor config"), str(proc_path))
    if num_classes is not None and num_classes != n_labels:
        raise CheckpointError(f"{weights} has {n_labels} labels, not {num_classes}")
    bars = tf.utils.logging.is_progress_bar_enabled()
    tf.utils.logging.disable_progress_bar()  # its per-tensor loading bar is noise on our stdout
    try:
        hf = tf.SegformerForSemanticSegmentation.from_pretrained(
            weights, local_files_only=not online
        )
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot load SegFormer weights from {weights}: {first}") from None
    finally:
        if bars:
            tf.utils.logging.enable_progress_bar()
    return SegformerSeg(hf, split or "context", void_index=void_index, class_map=class_map, **norm)


def _register() -> None:
    from bmvseg.models.registry import register

    register("segformer", build_segformer, handles_weights=True, splits=SPLITS, overwrite=True)


_register()
