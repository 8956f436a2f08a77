"""Training the conv fusion of inter-BMV (paper Sec. 4.0.3), feature and task networks frozen.

A training sample is a short clip ``I_0 .. I_n`` with a label for frame ``p`` (0 < p < n): the
keyframes ``I_0`` and ``I_n`` go through the frozen feature network, their features are warped
forward ``p`` steps and backward ``n - p`` steps with the clip's own block motion (the clip is
encoded with H.264 and read back exactly as at inference), fused by the 1x1 convolution, and the
frozen task network's loss against the label trains only the fusion.

CamVid's training split has no video around its labelled frames (1 Hz stills), so its clips are
made from each still by a random smooth camera motion (zoom and pan, labels moved with the same
warp): the codec, the vectors and the warping are real, the motion is simpler than a real
drive's (no parallax, no independently moving objects).  Generated street scenes are real
videos with exact labels on every frame.  CamVid ``val/`` is never used.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from bmvseg import progress
from bmvseg.data.classes import IGNORE_INDEX
from bmvseg.evaluation.metrics import ConfusionMatrix
from bmvseg.models.base import SegmentationModel
from bmvseg.models.checkpoint import save_checkpoint
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.interval import interpolate
from bmvseg.schemes.propagation import Carrier, flows_prev_to_cur
from bmvseg.video.encode import CLIP_OPTIONS, encode_video
from bmvseg.video.reader import VideoReader

CLIP_ENCODING = CLIP_OPTIONS


@dataclass
class Window:
    """A training sample: keyframes first and last, the label of frame ``p``."""
    frames: list[np.ndarray]  # n + 1 RGB frames, keyframes first and last
    p: int
    label: np.ndarray  # labels of frame p


def still_windows(dataset, rng: np.random.Generator, max_n: int = 10,
                  scale: float = 1.0) -> Iterator[Window]:  # fmt: skip
    """Clips made from labelled stills by a random smooth camera motion (see module docstring).

    ``scale`` < 1 shrinks the stills first: the fusion is a 1x1 convolution, indifferent to
    resolution, and smaller clips make each step several times cheaper.
    """
    while True:
        rgb, labels = dataset[int(rng.integers(len(dataset)))]
        if scale != 1.0:
            size = (round(labels.shape[1] * scale), round(labels.shape[0] * scale))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        n = int(rng.integers(2, max_n + 1))
        p = int(rng.integers(1, n))
        h, w = labels.shape
        zoom = 1 + rng.uniform(-0.01, 0.02)
        vx, vy = rng.uniform(-6, 6), rng.uniform(-2, 2)
        cx, cy = w * rng.uniform(0.3, 0.7), h * rng.uniform(0.4, 0.6)
        mats = []
        for j in range(n + 1):
            s = zoom**j
            mats.append(np.array([[s, 0, (1 - s) * cx + vx * j], [0, s, (1 - s) * cy + vy * j]]))
        frames = [cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT) for m in mats]  # fmt: skip
        label = cv2.warpAffine(labels, mats[p], (w, h), flags=cv2.INTER_NEAREST,
                               borderValue=IGNORE_INDEX)  # fmt: skip
        yield Window(frames, p, label)


def clip_windows(clips: list[tuple[list[np.ndarray], list[np.ndarray]]],
                 rng: np.random.Generator, max_n: int = 10) -> Iterator[Window]:  # fmt: skip
    """Windows of real labelled clips (e.g. generated street scenes)."""
    while True:
        frames, labels = clips[int(rng.integers(len(clips)))]
        n = int(rng.integers(2, min(max_n, len(frames) - 1) + 1))
        k = int(rng.integers(0, len(frames) - n))
        p = int(rng.integers(1, n))
        yield Window(frames[k : k + n + 1], p, labels[k + p])


def fused_logits(model: SegmentationModel, conv: ConvFusion | None, window: Window,
                 op: str) -> torch.Tensor:  # fmt: skip
    """Logits of frame p from its two keyframes, with the clip's real codec motion."""
    buf = io.BytesIO()
    encode_video(window.frames, buf, fps=15.0, options=CLIP_ENCODING)
    buf.seek(0)
    n, p = len(window.frames) - 1, window.p
    with VideoReader(buf, motion="native") as reader:
        decoded = list(reader.frames(images=True))  # keyframes as the engine sees them: decoded
        images = decoded[0].image, decoded[n].image  # converted while the decoder is open
    fields = [f.motion for f in decoded]
    carrier = Carrier(lambda j, like: flows_prev_to_cur(fields[j], like, model.strides), memo=True)
    with torch.no_grad():  # frozen networks and warps; only the fusion learns
        key = model.features(model.preprocess(images[0]))
        nxt = model.features(model.preprocess(images[1]))
        carrier.carry(0, key, p)
        carrier.carry(n, nxt, p)
    fused = interpolate(carrier, (0, key), (n, nxt), [p], op, conv)[p]  # the engine's Alg. 2
    return model.task(fused, window.label.shape)


def train_fusion(model: SegmentationModel, windows: Iterator[Window], held_out: list[Window],
                 *, steps: int = 300, lr: float = 1e-3, out: str, meta: dict) -> dict:  # fmt: skip
    """Train a ConvFusion for ``model`` (frozen) and save it; returns held-out mIoU avg vs conv."""
    model.eval().requires_grad_(False)
    with torch.no_grad():
        probe = model.features(model.preprocess(held_out[0].frames[0]))
    conv = ConvFusion([f.shape[1] for f in probe])
    opt = torch.optim.Adam(conv.parameters(), lr=lr)
    t0 = time.perf_counter()
    bar = progress.bar(range(steps), desc="train-fusion")
    for step in bar:
        w = next(windows)
        logits = fused_logits(model, conv, w, "conv")
        target = torch.from_numpy(w.label.astype(np.int64))[None]
        loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:
            g["lr"] = lr * (1 - (step + 1) / steps) ** 0.9
        bar.set_postfix(loss=f"{loss.item():.3f}")
    result = {"steps": steps, "train_seconds": round(time.perf_counter() - t0, 1)}
    with torch.no_grad():
        for op, fusion in (("avg", None), ("conv", conv)):
            cm = ConfusionMatrix(model.num_classes)
            for w in held_out:
                logits = fused_logits(model, fusion, w, op)
                cm.update(logits[0].argmax(0).numpy(), w.label)
            result[f"held_out_miou_{op}"] = round(100 * cm.miou(), 2)
    save_checkpoint(out, conv, {**meta, **result})
    return result


def training_windows(dataset: str, root: str | None, *, seed: int = 0, scale: float = 0.5,
                     held_out: int = 24) -> tuple[Iterator[Window], list[Window]]:  # fmt: skip
    """Training windows and held-out windows for ``dataset`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    if dataset == "camvid":
        from bmvseg.data.registry import get_dataset

        train, test = (get_dataset("camvid", root, s) for s in ("train", "test"))
        windows = still_windows(train, rng, scale=scale)
        held = still_windows(test, np.random.default_rng(1), scale=scale)
    else:
        windows = clip_windows(_synthetic_clips("train", 6), rng)
        held = clip_windows(_synthetic_clips("test", 2), np.random.default_rng(1))
    return windows, [next(held) for _ in range(held_out)]


def _synthetic_clips(split: str, count: int, frames: int = 30):
    from bmvseg.data.synthetic.clip import render_clip
    from bmvseg.data.synthetic.dataset import split_seed

    clips = []
    for i in range(count):
        clip = render_clip(split_seed(split, i), 240, 320, frames)
        fr = [clip.frame(j, flow=False) for j in range(frames)]
        clips.append(([f.rgb for f in fr], [f.labels for f in fr]))
    return clips
