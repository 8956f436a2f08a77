"""``bmvseg.segment``: the Python entry point to the streaming engine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import torch

from bmvseg.errors import CheckpointError
from bmvseg.models.base import SegmentationModel
from bmvseg.models.checkpoint import load_checkpoint
from bmvseg.models.registry import WEIGHTS_DIR, build_model
from bmvseg.schemes.engine import Engine, EngineConfig, FrameResult
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.reader import VideoReader

DEFAULT_MODEL = "enet_lite"


def fusion_weights_path(model_name: str) -> Path:
    """Where the conv-fusion weights shipped for ``model_name`` live."""
    return WEIGHTS_DIR / f"{model_name}.fusion.pt"


def load_conv_fusion(model: SegmentationModel, path: str | os.PathLike) -> ConvFusion:
    """Conv-fusion weights for ``model`` (one 1x1 conv per feature tensor), loaded safely."""
    with torch.inference_mode(False):
        probe = torch.zeros(1, 3, 64, 64, device=next(model.parameters()).device)
        with torch.no_grad():
            channels = [f.shape[1] for f in model.features(probe)]
    fusion = ConvFusion(channels)
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no conv-fusion weights (train them: bmvseg train-fusion)")
    load_checkpoint(path, fusion)
    return fusion.to(next(model.parameters()).device).eval()


def build_engine(
    model: str | SegmentationModel,
    config: EngineConfig,
    *,
    weights: str | os.PathLike | None = "default",
    device: str = "cpu",
    split: str | None = None,
    fusion_weights: str | os.PathLike | None = None,
    timer: StageTimer | None = None,
) -> Engine:
    """An engine for ``config`` with ``model`` (a registered name or a model object) ready to run.

    The model goes to ``device`` in channels_last and eval mode; ``fusion="conv"`` loads the
    fusion weights (by default those shipped for the model).  ``split`` picks the cut of a model
    built by name where it has a choice (torchvision models; None = its default).
    """
    if isinstance(model, str):
        name = model
        model = build_model(model, weights=weights, device=device, split=split)
    else:
        name = type(model).__name__
    model = model.to(device).to(memory_format=torch.channels_last).eval()
    conv = None
    if config.scheme == "inter-bmv" and config.fusion == "conv":
        conv = load_conv_fusion(model, fusion_weights or fusion_weights_path(name))
    return Engine(model, config, conv, timer)


def segment(
    video: str | os.PathLike | BinaryIO,
    *,
    model: str | SegmentationModel = DEFAULT_MODEL,
    weights: str | os.PathLike | None = "default",
    scheme: str = "inter-bmv",
    interval: int = 5,
    fusion: str = "avg",
    fusion_weights: str | os.PathLike | None = None,
    motion: str = "auto",
    device: str = "cpu",
    split: str | None = None,
    start: int = 0,
    end: int | None = None,
    accumulate: bool = False,
    keep_logits: bool = False,
    keep_features: bool = False,
    timer: StageTimer | None = None,
) -> Iterator[FrameResult]:
    """Segment ``video`` with ``scheme``, yielding one :class:`FrameResult` per frame in order.

    ``model`` is a registered name (see ``bmvseg.models.registry.available_models``) or a model
    object.  For ``fusion="conv"`` the fusion weights default to those shipped for the model;
    ``split`` is :func:`build_engine`'s.
    """
    cfg = EngineConfig(
        scheme=scheme,
        interval=interval,
        fusion=fusion,
        accumulate=accumulate,
        keep_logits=keep_logits,
        keep_features=keep_features,
    )
    engine = build_engine(model, cfg, weights=weights, device=device, split=split,
                          fusion_weights=fusion_weights, timer=timer)  # fmt: skip
    with VideoReader(video, motion=motion) as reader:
        yield from engine.run(reader.frames(images=True, start=start), start=start, end=end)
