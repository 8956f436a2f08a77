"""torchvision's segmentation networks as bmvseg feature network + task network.

Where the network is cut decides what a non-key frame costs (``bench/RESULTS-models.md``):

- ``split="backbone"``: features = the backbone's output, task = the whole head (ASPP / FCN head /
  LRASPP head) + classifier + upsample.  This is the paper's cut (ResNet-101 output warped), but
  the head is then run on every frame, and for DeepLabV3 the ASPP alone costs a large share of a
  keyframe; the warped tensor is also wide (2048 channels for ResNets, 960 for MobileNetV3).
- ``split="context"``: features = the output of the context module (DeepLabV3: ASPP's 256-channel
  projection; FCN: the head's 3x3 conv + BN + ReLU, 512 channels; LRASPP: the low-level map and
  the 128-channel gated high-level map), task = the remaining 3x3/1x1 convs + classifier +
  upsample.  Non-key frames cost a few percent of a keyframe.  The context features include
  global pooling (ASPP's image-pooling branch, LRASPP's gate), so a warp moves pixels whose
  values also depend on the whole image.

``context`` is every family's default: it lifts the keyframe-interval-10 speedup bound of the
ResNet models from 2.5-4x to 8.5-9.7x on this CPU, and on CamVid's labelled video a
DeepLabV3-MobileNetV3 trained here lost the same accuracy with either cut (inter-BMV within 0.3
mIoU at every interval; ``bench/RESULTS-models.md``).  ``--split backbone`` checks it on other
footage.

The wrapper keeps torchvision's module names (``backbone``, ``classifier``, ``aux_classifier``),
so a torchvision ``state_dict`` loads into it unchanged.  torchvision is an optional extra and is
imported only when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bmvseg.data.classes import (
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    CITYSCAPES_CLASSES,
    CITYSCAPES_PALETTE,
    voc_palette,
)
from bmvseg.errors import BmvsegError, CheckpointError
from bmvseg.models.base import Features, SegmentationModel
from bmvseg.models.checkpoint import load_checkpoint, read_checkpoint

SPLITS = ("backbone", "context")


def _torchvision():
    try:
        import torchvision  # noqa: F401
        from torchvision.models import segmentation
    except ModuleNotFoundError:
        raise BmvsegError(
            "torchvision models need torchvision: pip install 'bmvseg[torchvision]'"
        ) from None
    return segmentation


def _labels_for(num_classes: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and palette for a class count with no metadata: the known sets, else generic."""
    if num_classes == len(CAMVID_CLASSES):
        return CAMVID_CLASSES, CAMVID_PALETTE
    if num_classes == len(CITYSCAPES_CLASSES):
        return CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
    return tuple(f"class{i}" for i in range(num_classes)), voc_palette(num_classes)


class _TorchvisionSeg(SegmentationModel):
    """Common part: torchvision's backbone / classifier modules, labels and normalisation."""

    def __init__(self, tv: nn.Module, split: str, strides: tuple[int, ...], num_classes: int):
        super().__init__()
        if split not in SPLITS:
            raise BmvsegError(f"split must be one of {SPLITS}, not {split!r}")
        self.split = split
        self.backbone = tv.backbone
        self.classifier = tv.classifier
        self.aux_classifier = getattr(tv, "aux_classifier", None)  # unused; kept for state_dicts
        self.strides = strides
        self.num_classes = num_classes
        self.class_names, self.palette = _labels_for(num_classes)

    def _head(self, x: torch.Tensor, start: int, stop: int | None = None) -> torch.Tensor:
        """Run ``classifier[start:stop]`` (torchvision's head subclasses cannot be sliced)."""
        for m in list(self.classifier)[start:stop]:
            x = m(x)
        return x


class DeepLabV3Seg(_TorchvisionSeg):
    """DeepLabV3: backbone -> ASPP (``classifier[0]``) -> 3x3 conv/BN/ReLU -> 1x1 classifier."""

    def features(self, image: torch.Tensor) -> Features:
        x = self.backbone(image)["out"]
        return (self._head(x, 0, 1),) if self.split == "context" else (x,)

    def logits(self, feats: Features) -> torch.Tensor:
        return self._head(feats[0], 1 if self.split == "context" else 0)


class FCNSeg(_TorchvisionSeg):
    """FCN: backbone -> 3x3 conv/BN/ReLU (``classifier[:3]``) -> dropout -> 1x1 classifier."""

    def features(self, image: torch.Tensor) -> Features:
        x = self.backbone(image)["out"]
        return (self._head(x, 0, 3),) if self.split == "context" else (x,)

    def logits(self, feats: Features) -> torch.Tensor:
        return self._head(feats[0], 3 if self.split == "context" else 0)


class LRASPPSeg(_TorchvisionSeg):
    """LRASPP: features are (low stride 8, high stride 16); the context split gates ``high``."""

    def features(self, image: torch.Tensor) -> Features:
        f = self.backbone(image)
        low, high = f["low"], f["high"]
        if self.split == "context":
            head = self.classifier
            high = head.cbr(high) * head.scale(high)
        return (low, high)

    def logits(self, feats: Features) -> torch.Tensor:
        low, high = feats
        if self.split == "backbone":
            return self.classifier({"low": low, "high": high})
        head = self.classifier
        x = F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return head.low_classifier(low) + head.high_classifier(x)


@dataclass(frozen=True)
class _Spec:
    cls: type[_TorchvisionSeg]
    weights_enum: str  # name of the torchvision weights enum in torchvision.models.segmentation
    strides: tuple[int, ...]
    make: Callable[[int, bool], nn.Module]  # (num_classes, aux) -> random torchvision model
    default_split: str
    final_key: str  # state_dict key of the classifier's last weight (its rows are the classes)


def _tv_builder(fn_name: str) -> Callable[[int, bool], nn.Module]:
    def make(num_classes: int, aux: bool) -> nn.Module:
        fn = getattr(_torchvision(), fn_name)
        kw = {"aux_loss": aux} if not fn_name.startswith("lraspp") else {}
        return fn(weights=None, weights_backbone=None, num_classes=num_classes, **kw)

    return make


def _deeplabv3_resnet101_os16(num_classes: int, aux: bool) -> nn.Module:
    """The paper's configuration: ResNet-101 at output stride 16, so ASPP rates halve to 6/12/18."""
    _torchvision()  # a clear error when torchvision is missing
    from torchvision.models import resnet101
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
    from torchvision.models.segmentation.fcn import FCNHead

    layers = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
    resnet = resnet101(weights=None, replace_stride_with_dilation=[False, False, True])
    return DeepLabV3(
        IntermediateLayerGetter(resnet, return_layers=layers),
        DeepLabHead(2048, num_classes, atrous_rates=(6, 12, 18)),
        FCNHead(1024, num_classes) if aux else None,
    )


_DL_KEY = "classifier.4.weight"
SPECS: dict[str, _Spec] = {
    "deeplabv3_resnet101": _Spec(
        DeepLabV3Seg,
        "DeepLabV3_ResNet101_Weights",
        (8,),
        _tv_builder("deeplabv3_resnet101"),
        "context",
        _DL_KEY,
    ),
    "deeplabv3_resnet101_os16": _Spec(
        DeepLabV3Seg,
        "DeepLabV3_ResNet101_Weights",
        (16,),
        _deeplabv3_resnet101_os16,
        "context",
        _DL_KEY,
    ),
    "deeplabv3_resnet50": _Spec(
        DeepLabV3Seg,
        "DeepLabV3_ResNet50_Weights",
        (8,),
        _tv_builder("deeplabv3_resnet50"),
        "context",
        _DL_KEY,
    ),
    "deeplabv3_mobilenet_v3_large": _Spec(
        DeepLabV3Seg,
        "DeepLabV3_MobileNet_V3_Large_Weights",
        (16,),
        _tv_builder("deeplabv3_mobilenet_v3_large"),
        "context",
        _DL_KEY,
    ),
    "lraspp_mobilenet_v3_large": _Spec(
        LRASPPSeg,
        "LRASPP_MobileNet_V3_Large_Weights",
        (8, 16),
        _tv_builder("lraspp_mobilenet_v3_large"),
        "context",
        "classifier.low_classifier.weight",
    ),
    "fcn_resnet50": _Spec(
        FCNSeg, "FCN_ResNet50_Weights", (8,), _tv_builder("fcn_resnet50"), "context", _DL_KEY
    ),
}


def resolve_torchvision_weights(arch: str, name: str):
    """torchvision's weights enum member: ``name`` "DEFAULT" or e.g. "COCO_WITH_VOC_LABELS_V1"."""
    enum = getattr(_torchvision(), SPECS[arch].weights_enum)
    try:
        return enum[name.upper()] if name.upper() == "DEFAULT" else enum[name]
    except KeyError:
        options = ", ".join(["DEFAULT", *(w.name for w in enum)])
        raise BmvsegError(
            f"{name!r} is neither a file nor torchvision weights for {arch} ({options})"
        ) from None


def _checkpoint_info(path: Path, spec: _Spec) -> tuple[int, bool]:
    """(num_classes, has aux head) of a checkpoint, read before building the model to fit it."""
    ckpt = read_checkpoint(path)
    state, meta = ckpt["state_dict"], ckpt.get("meta") or {}
    n = meta.get("num_classes")
    if n is None:
        if spec.final_key not in state:
            raise CheckpointError(f"{path} has no {spec.final_key!r}: not a {spec.cls.__name__}")
        n = int(state[spec.final_key].shape[0])
    return int(n), any(k.startswith("aux_classifier.") for k in state)


def build_torchvision_model(
    arch: str,
    *,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    split: str | None = None,
    channels_last: bool = True,
) -> _TorchvisionSeg:
    """Build ``arch`` (a key of :data:`SPECS`) in eval mode.

    ``weights``: None / "none" = random (``num_classes`` default 21); "DEFAULT" (any case) or a
    torchvision weights name = torchvision's pretrained weights via its normal download and
    cache (21 COCO-VOC classes); otherwise a checkpoint path (a bmvseg checkpoint or a plain
    torchvision ``state_dict``), whose class count is used unless ``num_classes`` contradicts
    it.  ``split`` None = the family's default (see module docstring).
    """
    if arch not in SPECS:
        raise BmvsegError(f"unknown torchvision model {arch!r}; available: {', '.join(SPECS)}")
    spec = SPECS[arch]
    split = split or spec.default_split
    if isinstance(weights, str) and weights.lower() == "none":
        weights = None

    tv_weights = ckpt_path = None
    aux = False
    if weights is None:
        n = num_classes or 21
    elif Path(weights).is_file():
        ckpt_path = Path(weights)
        n, aux = _checkpoint_info(ckpt_path, spec)
        if num_classes is not None and num_classes != n:
            raise CheckpointError(
                f"{ckpt_path} has {n} classes but num_classes={num_classes} was asked for {arch}"
            )
    else:
        tv_weights = resolve_torchvision_weights(arch, str(weights))
        n = len(tv_weights.meta["categories"])
        if num_classes is not None and num_classes != n:
            raise BmvsegError(
                f"torchvision weights {tv_weights} have {n} classes, not num_classes={num_classes}"
                "; fine-tune them or pass weights=None"
            )
        aux = arch != "lraspp_mobilenet_v3_large"  # torchvision's files include the aux head

    model = spec.cls(spec.make(n, aux), split, spec.strides, n)
    if ckpt_path is not None:
        load_checkpoint(ckpt_path, model)
    elif tv_weights is not None:
        try:
            state = tv_weights.get_state_dict(progress=True, check_hash=True)
        except OSError as exc:  # URLError is an OSError: offline, proxy, disk full
            raise CheckpointError(
                f"cannot download torchvision weights {tv_weights}: {exc}; "
                "pass a local checkpoint path instead"
            ) from None
        model.load_state_dict(state)
        cats = tuple(tv_weights.meta["categories"])
        model.class_names, model.palette = cats, voc_palette(len(cats))
        tf = tv_weights.transforms()
        model.mean, model.std = tuple(tf.mean), tuple(tf.std)
    model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _registry_builder(arch: str) -> Callable[..., SegmentationModel]:
    def build(*, num_classes: int | None = None, weights: str | Path | None = None, **kw):
        if isinstance(weights, str) and weights == "default":
            weights = "DEFAULT"  # the registry's "default" = torchvision's own weights
        return build_torchvision_model(arch, weights=weights, num_classes=num_classes, **kw)

    build.__name__ = f"build_{arch}"
    build.__doc__ = f"``{arch}`` via :func:`build_torchvision_model`."
    return build


def _register() -> None:
    from bmvseg.models.registry import register

    for arch in SPECS:
        register(arch, _registry_builder(arch), handles_weights=True, splits=SPLITS, overwrite=True)


_register()
