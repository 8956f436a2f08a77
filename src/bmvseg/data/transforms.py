"""Training augmentation on numpy arrays: random scale, crop with void padding, flip, colour jitter.

Works on the ``(rgb uint8 (H,W,3), labels uint8 (H,W))`` pairs of every bmvseg dataset; OpenCV
does the resizing (bilinear for images, nearest for labels so no new label values appear).
Padding uses the dataset's void (255) for labels and zero for images, so padding never counts as
a class.  ``to_tensors`` gives what the training loop feeds to the model's normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from bmvseg.data.classes import IGNORE_INDEX


@dataclass
class TrainAugment:
    """Random-scale -> pad/crop to ``crop`` (H, W) -> horizontal flip -> brightness/contrast."""

    crop: tuple[int, int] = (256, 256)
    scale: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    jitter: float = 0.2  # max relative brightness / contrast / saturation change

    def __call__(
        self, rgb: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        s = float(np.exp(rng.uniform(np.log(self.scale[0]), np.log(self.scale[1]))))
        h, w = labels.shape
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        if (nh, nw) != (h, w):
            interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
            rgb = cv2.resize(rgb, (nw, nh), interpolation=interp)
            labels = cv2.resize(labels, (nw, nh), interpolation=cv2.INTER_NEAREST)
        rgb, labels = random_crop(rgb, labels, self.crop, rng)
        if self.flip and rng.random() < 0.5:
            rgb, labels = rgb[:, ::-1], labels[:, ::-1]
        if self.jitter > 0:
            rgb = colour_jitter(rgb, self.jitter, rng)
        return np.ascontiguousarray(rgb), np.ascontiguousarray(labels)


def random_crop(
    rgb: np.ndarray, labels: np.ndarray, size: tuple[int, int], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` window; sides shorter than ``size`` are padded (image 0, labels void)."""
    ch, cw = size
    h, w = labels.shape
    ph, pw = max(0, ch - h), max(0, cw - w)
    if ph or pw:
        rgb = cv2.copyMakeBorder(rgb, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        labels = cv2.copyMakeBorder(labels, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
        h, w = labels.shape
    y = int(rng.integers(0, h - ch + 1))
    x = int(rng.integers(0, w - cw + 1))
    return rgb[y : y + ch, x : x + cw], labels[y : y + ch, x : x + cw]


def colour_jitter(rgb: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation, each a factor in [1-strength, 1+strength]."""
    b, c, s = rng.uniform(1 - strength, 1 + strength, 3)
    img = rgb.astype(np.float32)
    grey = img.mean(axis=2, keepdims=True)
    img = grey + (img - grey) * s
    img = (img - img.mean()) * c + img.mean() * b
    return np.clip(img, 0, 255).astype(np.uint8)


def to_tensors(
    batch: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """List of ``(rgb, labels)`` -> ``(N,H,W,3) uint8``, ``(N,H,W) int64`` tensors."""
    rgb = torch.from_numpy(np.stack([b[0] for b in batch]))
    labels = torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.int64))
    return rgb, labels
