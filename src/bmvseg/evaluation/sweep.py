"""The accuracy sweep of the paper's protocol, with every expensive step done once.

For a labelled frame ``t``, keyframe interval ``n`` and offset ``p`` the previous keyframe is
``k = t - p`` and the next is ``k + n``; the pair ``(n, p)`` is evaluated for ``t`` only when
both keyframes lie inside the clip (so every scheme is scored on the same frames).  ``p = 0``
is the keyframe itself, where every scheme equals per-frame.  Per clip, the feature network runs
once per frame, motion is read once, each forward chain from a keyframe is shared by prop-BMV
and every inter-BMV interval, and each prop-BMV / prop-flow result is shared by every ``n > p``.
Results are confusion matrices per ``(scheme, fusion, n, p)``, built with the same propagation
code as the streaming engine (:mod:`bmvseg.schemes.propagation`, :mod:`bmvseg.schemes.fusion`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from bmvseg.evaluation.clips import EvalClip
from bmvseg.evaluation.metrics import ConfusionMatrix
from bmvseg.models.base import Features, SegmentationModel
from bmvseg.schemes.engine import DIS_PRESETS, logits_to_labels, task_logits
from bmvseg.schemes.fusion import ConvFusion, fuse
from bmvseg.schemes.propagation import (
    Chain,
    Flows,
    dense_flows,
    field_flows,
    reverse,
    warp_features,
)
from bmvseg.video.reader import VideoReader

Key = tuple[str, str, int, int]  # (scheme, fusion, interval, offset)
FUSION_TABLE_DISTANCES = (1, 2, 3, 4)


@dataclass(frozen=True)
class Variant:
    scheme: str
    fusion: str = ""

    @property
    def label(self) -> str:
        return f"{self.scheme} ({self.fusion})" if self.fusion else self.scheme


class AccuracySweep:
    """Accumulates confusion matrices over clips; see the module docstring for the protocol."""

    def __init__(
        self,
        model: SegmentationModel,
        variants: Sequence[Variant],
        intervals: Sequence[int],
        *,
        conv: ConvFusion | None = None,
        flow_preset: str = "fast",
        accumulate: bool = False,
        example_interval: int = 7,
        label_stride: int = 1,
    ) -> None:
        self.model = model
        self.variants = list(variants)
        self.intervals = sorted(set(intervals))
        self.conv = conv
        self.accumulate = accumulate
        self.label_stride = label_stride
        self.dis = cv2.DISOpticalFlow_create(DIS_PRESETS[flow_preset])
        k = model.num_classes
        self.cms: dict[Key, ConfusionMatrix] = defaultdict(lambda: ConfusionMatrix(k))
        self.per_frame = ConfusionMatrix(k)
        self.fusion_cms: dict[tuple[str, int], ConfusionMatrix] = defaultdict(
            lambda: ConfusionMatrix(k)
        )
        self.example_interval = max([n for n in self.intervals if n <= example_interval] or [1])
        self.examples: dict[str, list[np.ndarray]] | None = None
        self.frames_scored = 0

    # -- helpers -------------------------------------------------------------------------------
    def _labels(self, feats: Features, hw: tuple[int, int]) -> np.ndarray:
        return logits_to_labels(task_logits(self.model, feats, hw, self.label_stride), hw)

    def _wants(self, scheme: str) -> list[Variant]:
        return [v for v in self.variants if v.scheme == scheme]

    # -- one clip --------------------------------------------------------------------------------
    @torch.inference_mode()
    def add_clip(self, clip: EvalClip, max_frames: int | None = None) -> dict[int, np.ndarray]:
        """Score one clip; returns the per-frame labels of its labelled (or all) frames."""
        with VideoReader(clip.video) as reader:
            frames = list(reader.frames(images=True, end=max_frames))
        T = len(frames)
        hw = frames[0].image.shape[:2]
        strides = self.model.strides
        feat_cache: dict[int, Features] = {}

        def feats(i: int) -> Features:
            if i not in feat_cache:
                img = self.model.preprocess(frames[i].image)
                feat_cache[i] = self.model.features(img)
            return feat_cache[i]

        flow_cache: dict[int, Flows] = {}

        def flows(j: int) -> Flows:
            """Frame j's motion field as flows on the feature grid, built once per clip frame."""
            if j not in flow_cache:
                shapes = next(iter(feat_cache.values()))  # every frame's features: same shapes
                flow_cache[j] = field_flows(frames[j].motion, shapes, strides)
            return flow_cache[j]

        per_frame = {}
        wanted = range(T) if clip.labels is None else [t for t in clip.labels if t < T]
        for t in tqdm(wanted, desc=f"{clip.name}: per-frame", leave=False):
            per_frame[t] = self._labels(feats(t), hw)
        targets = per_frame if clip.labels is None else {t: clip.labels[t] for t in wanted}
        for t, lab in per_frame.items():
            self.per_frame.update(lab, targets[t])
        self.frames_scored += len(targets)

        maxn = max(self.intervals)
        gray = {}
        keys = sorted({t - p for t in targets for p in range(1, maxn) if t - p >= 0})
        ex_k = self._example_key(T)
        for k in tqdm(keys, desc=f"{clip.name}: propagation", leave=False):
            chain = Chain(feats(k), self.accumulate)
            fwd: dict[int, Features] = {}
            for p in range(1, min(maxn, T - k)):
                fwd[p] = chain.step(flows(k + p))
            fwd_labels: dict[int, np.ndarray] = {}
            for p, f in fwd.items():
                t = k + p
                ns = [n for n in self.intervals if n > p and k + n <= T - 1]
                if t not in targets or not ns:
                    continue
                if self._wants("prop-bmv") or self._wants("inter-bmv"):
                    fwd_labels[p] = self._labels(f, hw)
                    for n in ns:
                        self.cms["prop-bmv", "", n, p].update(fwd_labels[p], targets[t])
                if self._wants("prop-flow"):
                    for i in (k, t):
                        if i not in gray:
                            gray[i] = cv2.cvtColor(frames[i].image, cv2.COLOR_RGB2GRAY)
                    flow = self.dis.calc(gray[t], gray[k], None)
                    lab = self._labels(
                        warp_features(feats(k), dense_flows(flow, feats(k), strides)), hw
                    )
                    for n in ns:
                        self.cms["prop-flow", "", n, p].update(lab, targets[t])
                    if k == ex_k and p < self.example_interval:
                        self._example("prop-flow", p, lab)
            if self._wants("inter-bmv"):
                self._interpolate(k, T, feats, flows, fwd, fwd_labels, targets, hw, ex_k)
            for cache in (feat_cache, flow_cache):  # keyframes only move forward
                for i in [i for i in cache if i < k]:
                    del cache[i]
            gray = {i: g for i, g in gray.items() if i >= k}
        if ex_k is not None and self.examples is not None and "images" not in self.examples:
            self.examples["images"] = [frames[ex_k + p].image for p in range(self.example_interval)]
            self.examples["per-frame"] = [
                self._labels(feats(ex_k + p), hw) for p in range(self.example_interval)
            ]
            self.examples["ground truth"] = [
                targets.get(ex_k + p) for p in range(self.example_interval)
            ]
            for row in self.examples.values():  # the keyframe itself is per-frame everywhere
                if row[0] is None:
                    row[0] = self.examples["per-frame"][0]
        return per_frame

    def _interpolate(self, k, T, feats, flows, fwd, fwd_labels, targets, hw, ex_k) -> None:
        for n in self.intervals:
            if n < 2 or k + n > T - 1:
                continue
            ps = [p for p in range(1, n) if k + p in targets]
            if not ps:
                continue
            nxt = feats(k + n)
            chain = Chain(nxt, self.accumulate)
            bwd: dict[int, Features] = {}
            for j in range(k + n, k + min(ps), -1):  # undo the motion of frame j: lands on j-1
                bwd[j - 1 - k] = chain.step(reverse(flows(j)))
            for p in ps:
                t = k + p
                for v in self._wants("inter-bmv"):
                    lab = self._labels(fuse(fwd[p], bwd[p], p, n, v.fusion, self.conv), hw)
                    self.cms["inter-bmv", v.fusion, n, p].update(lab, targets[t])
                    if (
                        k == ex_k
                        and n == self.example_interval
                        and v == self._wants("inter-bmv")[0]
                    ):
                        self._example(v.label, p, lab)
                if n == 2 * p and p in FUSION_TABLE_DISTANCES:
                    self.fusion_cms["forward", p].update(fwd_labels[p], targets[t])
                    self.fusion_cms["backward", p].update(self._labels(bwd[p], hw), targets[t])

    def _example_key(self, T: int) -> int | None:
        """The keyframe of the stretch shown in examples.png: mid-clip, first clip only."""
        n = self.example_interval
        if self.examples is not None or T < 2 * n + 1:
            return None
        self.examples = {}
        return max(0, (T - n) // 2 - 1)

    def _example(self, name: str, p: int, labels: np.ndarray) -> None:
        row = self.examples.setdefault(name, [None] * self.example_interval)
        row[p] = labels

    # -- results -------------------------------------------------------------------------------
    def cm(self, v: Variant, n: int, p: int) -> ConfusionMatrix:
        """Confusion matrix of variant ``v`` at interval ``n``, offset ``p`` (p=0: keyframes)."""
        if p == 0 or v.scheme == "per-frame" or n == 1:
            return self.per_frame
        return self.cms[v.scheme, v.fusion, n, p]

    def miou_avg_min(self, v: Variant, n: int) -> tuple[float, float]:
        """The paper's "avg" (all offsets pooled) and "min" (worst offset) mIoU, in %."""
        if v.scheme == "per-frame":
            n = 1
        cms = [self.cm(v, n, p) for p in range(n)]
        pooled = ConfusionMatrix(self.model.num_classes)
        for c in cms:
            pooled.merge(c)
        return 100 * pooled.miou(), 100 * min(c.miou() for c in cms)
