"""Model, conv-fusion weights and engine from a run's options: built one way for every caller."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from bmvseg.data.classes import read_palette
from bmvseg.devices import resolve_device
from bmvseg.errors import BmvsegError, CheckpointError
from bmvseg.models.base import SegmentationModel
from bmvseg.models.checkpoint import load_checkpoint
from bmvseg.models.registry import build_model, fusion_weights_for
from bmvseg.run.options import RunOptions
from bmvseg.schemes.engine import Engine, EngineConfig
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.timing import StageTimer


def load_conv_fusion(model: SegmentationModel, path: str | os.PathLike) -> ConvFusion:
    """Conv-fusion weights for ``model`` (one 1x1 conv per feature tensor), loaded safely."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no conv-fusion weights (train them: bmvseg train-fusion)")
    device = next(model.parameters()).device
    with torch.inference_mode(False), torch.no_grad():
        channels = [f.shape[1] for f in model.features(torch.zeros(1, 3, 64, 64, device=device))]
    fusion = ConvFusion(channels)
    load_checkpoint(path, fusion)
    return fusion.to(device).eval()


def prepare_model(options: RunOptions) -> SegmentationModel:
    """The options' model on their device, channels_last, eval mode (built if named), in the
    options' palette if they give one."""
    device = resolve_device(options.device)
    model = options.model
    if isinstance(model, str):
        model = build_model(model, weights=options.weights, device=device, split=options.split)
    if options.palette is not None:
        model.palette = read_palette(options.palette, model.class_names, model.palette)
    return model.to(device).to(memory_format=torch.channels_last).eval()


def conv_fusion_for(model: SegmentationModel, options: RunOptions) -> ConvFusion:
    """The conv fusion for ``model``: the given file, else the one beside the model's weights."""
    path = options.fusion_weights
    if path is None and isinstance(options.model, str):
        path = fusion_weights_for(options.model, options.weights)
    if path is None:
        raise CheckpointError(
            "conv fusion needs fusion weights: pass them (--fusion-weights / fusion_weights=) "
            "or train them beside the model's weights (bmvseg train-fusion)"
        )
    return load_conv_fusion(model, path)


def build_engine(
    options: RunOptions,
    model: SegmentationModel | None = None,
    timer: StageTimer | None = None,
    **config,
) -> Engine:
    """An engine for ``options`` (``model`` if already prepared); ``config`` overrides engine
    fields (e.g. ``keep_logits``), checked as the options were."""
    if not isinstance(options, RunOptions):
        raise BmvsegError(f"options must be RunOptions, got {type(options).__name__}")
    if timer is not None and not isinstance(timer, StageTimer):
        raise BmvsegError(f"timer must be a StageTimer or None, got {timer!r}")
    cfg: EngineConfig = options.engine_config(**config)
    model = model if model is not None else prepare_model(options)
    conv = None
    if cfg.traits.fuses and cfg.fusion == "conv":
        conv = conv_fusion_for(model, options)
    return Engine(model, cfg, conv, timer)
