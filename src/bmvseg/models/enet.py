"""A compact ENet-style network split into a warpable feature network and a tiny task network.

Why this design: ENet (Paszke et al. 2016) reaches ~50% mIoU on CamVid from scratch with 0.4M
parameters, which fits the 2-core CPU we train on.  Two changes make it fit the keyframe/warp
scheme of the paper:

- ENet's max-unpooling decoder needs pooling indices, which cannot be warped.  The stride-8 encoder
  output is instead upsampled bilinearly and added to the stride-4 encoder map (LinkNet-style),
  and two bottlenecks refine it.  That stride-4, 64-channel map is the one feature tensor; it is
  local (no global pooling), so warping it with block motion is meaningful.
- The task network is a 1x1 projection + 1x1 classifier at stride 4 and a bilinear upsample of
  the logits: a few percent of the feature network's cost (see ``bench/models.py``).

All convolutions are plain ``nn.Conv2d`` so the model runs channels_last.  Inputs of any size
work: each stride-2 step rounds up, and the decoder upsamples to the skip map's exact size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from bmvseg.models.base import Features, SegmentationModel


def _cbp(cin: int, cout: int, k: int | tuple[int, int] = 1, **kw) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + PReLU: the unit ENet is built of."""
    if isinstance(k, int):
        pad = kw.pop("padding", (k // 2) * kw.get("dilation", 1))
    else:
        pad = kw.pop("padding")
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=pad, bias=False, **kw), nn.BatchNorm2d(cout), nn.PReLU(cout)
    )


class InitialBlock(nn.Module):
    """ENet's stem: a stride-2 3x3 conv (13 ch) concatenated with a max-pool of the image (3 ch)."""

    def __init__(self, cout: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, cout - 3, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, ceil_mode=True)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], 1)))


class Bottleneck(nn.Module):
    """ENet bottleneck: 1x1 reduce -> (3x3 dilated | 5x1+1x5) -> 1x1 expand, residual, PReLU."""

    def __init__(
        self, ch: int, *, dilation: int = 1, asymmetric: bool = False, dropout: float = 0.1
    ) -> None:
        super().__init__()
        mid = ch // 4
        if asymmetric:
            conv = nn.Sequential(
                nn.Conv2d(mid, mid, (5, 1), padding=(2, 0), bias=False),
                _cbp(mid, mid, (1, 5), padding=(0, 2)),
            )
        else:
            conv = _cbp(mid, mid, 3, dilation=dilation)
        self.branch = nn.Sequential(
            _cbp(ch, mid, 1),
            conv,
            nn.Conv2d(mid, ch, 1, bias=False),
            nn.BatchNorm2d(ch),
            nn.Dropout2d(dropout),
        )
        self.act = nn.PReLU(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class DownBottleneck(nn.Module):
    """Stride-2 bottleneck; the main path is max-pool + 1x1 conv (no pooling indices kept)."""

    def __init__(self, cin: int, cout: int, dropout: float = 0.1) -> None:
        super().__init__()
        mid = cout // 4
        self.branch = nn.Sequential(
            _cbp(cin, mid, 3, stride=2, padding=1),
            _cbp(mid, mid, 3),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.Dropout2d(dropout),
        )
        self.main = nn.Sequential(
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.main(x) + self.branch(x))


def _dilated_stage(ch: int, dropout: float) -> list[nn.Module]:
    """ENet stage 2/3 pattern: regular, d2, asym5, d4, regular, d8, asym5, d16."""
    return [
        Bottleneck(ch, dropout=dropout),
        Bottleneck(ch, dilation=2, dropout=dropout),
        Bottleneck(ch, asymmetric=True, dropout=dropout),
        Bottleneck(ch, dilation=4, dropout=dropout),
        Bottleneck(ch, dropout=dropout),
        Bottleneck(ch, dilation=8, dropout=dropout),
        Bottleneck(ch, asymmetric=True, dropout=dropout),
        Bottleneck(ch, dilation=16, dropout=dropout),
    ]


class ENetLite(SegmentationModel):
    """ENet encoder + LinkNet-style decoder to stride 4 (features) + 1x1 classifier (task).

    ``features(image)`` -> ``(f,)`` with ``f`` of shape ``(N, 64, ceil(H/4), ceil(W/4))``.
    ``logits((f,))`` -> ``(N, num_classes, ceil(H/4), ceil(W/4))``; ``task((f,), (H, W))`` -> the
    same upsampled bilinearly to ``(N, num_classes, H, W)``.
    """

    strides = (4,)

    def __init__(
        self,
        num_classes: int = len(CAMVID_CLASSES),
        class_names: Sequence[str] | None = None,
        palette: np.ndarray | None = None,
        *,
        dropout: float = 0.05,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        if class_names is None:
            class_names = CAMVID_CLASSES if num_classes == len(CAMVID_CLASSES) else None
        self.class_names = tuple(class_names or (f"class{i}" for i in range(num_classes)))
        if palette is None:
            if num_classes == len(CAMVID_PALETTE):
                palette = CAMVID_PALETTE
            else:
                palette = np.random.default_rng(0).integers(0, 256, (num_classes, 3), np.uint8)
        self.palette = np.asarray(palette, np.uint8)
        self.initial = InitialBlock(16)
        self.stage1 = nn.Sequential(
            DownBottleneck(16, 64, dropout=dropout / 10),
            *[Bottleneck(64, dropout=dropout / 10) for _ in range(4)],
        )
        self.stage2 = nn.Sequential(
            DownBottleneck(64, 128, dropout=dropout), *_dilated_stage(128, dropout)
        )
        self.stage3 = nn.Sequential(*_dilated_stage(128, dropout))
        self.up_proj = nn.Sequential(nn.Conv2d(128, 64, 1, bias=False), nn.BatchNorm2d(64))
        self.up_act = nn.PReLU(64)
        self.decoder = nn.Sequential(Bottleneck(64, dropout=0.0), Bottleneck(64, dropout=0.0))
        self.head = nn.Sequential(_cbp(64, 32, 1), nn.Conv2d(32, num_classes, 1))

    def features(self, image: torch.Tensor) -> Features:
        s4 = self.stage1(self.initial(image))
        s8 = self.stage3(self.stage2(s4))
        up = F.interpolate(
            self.up_proj(s8), size=s4.shape[-2:], mode="bilinear", align_corners=False
        )
        return (self.decoder(self.up_act(up + s4)),)

    def logits(self, feats: Features) -> torch.Tensor:
        return self.head(feats[0])  # task = the base class's bilinear upsample of these


def build_enet_lite(*, num_classes: int | None = None) -> ENetLite:
    """Random-init :class:`ENetLite`; CamVid's 11 classes unless ``num_classes`` says otherwise."""
    return ENetLite(num_classes or len(CAMVID_CLASSES))
