"""The accuracy sweep of the paper's protocol: the streaming engine run at every phase.

For keyframe interval ``n`` and phase ``phi`` the keyframes are the frames ``k`` with
``k % n == phi`` (what ``bmvseg segment -k n`` runs is phase 0).  A frame ``t`` is scored at
``(n, phi)`` when both keyframes around it lie inside the clip: the previous one
``k = t - p`` (``p = (t - phi) % n``, the offset) and the next one ``k + n``.  Scoring every
labelled frame at every phase is the paper's protocol of scoring every offset ``p``, and each
result is exactly what :class:`~bmvseg.schemes.engine.Engine` yields for that frame when run at
that phase: the sweep runs the engine on the range from ``k`` (ranges give a whole run's labels)
asking only for ``t``.

Economy without a second copy of any scheme: the engines share one cache of feature-network
outputs (each frame's features computed once) and one memoising
:class:`~bmvseg.schemes.propagation.Carrier` (each frame's motion turned into flows once, each
chain from a keyframe to a frame warped once, shared by prop-BMV, every inter-BMV fusion and
every ``(n, phi)`` that needs it).  Caches only keep frames within the longest interval of the
frame being scored, so memory does not grow with the clip.

Results are confusion matrices per ``(scheme, fusion, n, p)`` (the paper's avg and min over
offsets) and per ``(scheme, fusion, n, phi)`` (``phases.csv``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bmvseg import progress
from bmvseg.evaluation.clips import EvalClip
from bmvseg.evaluation.metrics import ConfusionMatrix
from bmvseg.models.base import Features, SegmentationModel
from bmvseg.schemes.base import Traits
from bmvseg.schemes.engine import Engine, EngineConfig
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.propagation import Carrier, Flows, flows_prev_to_cur
from bmvseg.schemes.registry import reference_scheme, scheme_traits
from bmvseg.video.frame import Frame
from bmvseg.video.reader import VideoReader

Key = tuple[str, str, int, int]  # (scheme, fusion, interval, offset or phase)
FUSION_TABLE_DISTANCES = (1, 2, 3, 4)


@dataclass(frozen=True)
class Variant:
    """A scheme and, for a scheme that fuses, its fusion: one row of the benchmark."""
    scheme: str
    fusion: str = ""

    @property
    def label(self) -> str:
        return f"{self.scheme} ({self.fusion})" if self.fusion else self.scheme

    @property
    def traits(self) -> Traits:
        return scheme_traits(self.scheme)

    def engine_options(self) -> dict:
        """The engine keywords this variant sets (its fusion only where it has one)."""
        return {"scheme": self.scheme, **({"fusion": self.fusion} if self.fusion else {})}


def variants_of(schemes: Sequence[str], fusions: Sequence[str]) -> list[Variant]:
    """The benchmark's rows: the reference scheme first (always), then each scheme, one row per
    fusion for the schemes that fuse."""
    ref = reference_scheme()
    out = [Variant(ref)]
    for s in schemes:
        if s != ref:
            out += [Variant(s, f) for f in fusions] if scheme_traits(s).fuses else [Variant(s)]
    return out


def scored_key(t: int, n: int, phase: int, frames: int) -> int | None:
    """The previous keyframe of frame ``t`` at ``(n, phase)`` if ``t`` is scored there, else None.

    Scored: both keyframes around ``t`` lie inside a clip of ``frames`` frames.
    """
    k = t - (t - phase) % n
    return k if k >= 0 and k + n <= frames - 1 else None


class _Clip:
    """One clip's frames with the caches every engine run over it shares."""

    def __init__(self, model: SegmentationModel, frames: list[Frame], accumulate: bool) -> None:
        self.model = model
        self.frames = frames
        self.feats: dict[int, Features] = {}
        self.flows: dict[int, Flows] = {}
        self.carrier = Carrier(self.flows_of, accumulate=accumulate, memo=True)

    def features(self, frame: Frame) -> Features:
        i = frame.index
        if i not in self.feats:
            self.feats[i] = self.model.features(self.model.preprocess(frame.image))
        return self.feats[i]

    def flows_of(self, j: int, like: Features) -> Flows:
        if j not in self.flows:
            self.flows[j] = flows_prev_to_cur(self.frames[j].motion, like, self.model.strides)
        return self.flows[j]

    def forget_before(self, index: int) -> None:
        self.carrier.forget_before(index)
        for cache in (self.feats, self.flows):
            for i in [i for i in cache if i < index]:
                del cache[i]


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
        self.variants = [v for v in variants if v.traits.uses_interval]
        self.intervals = sorted(set(intervals))
        self.conv = conv
        self.config = {"flow_preset": flow_preset, "accumulate": accumulate,
                       "label_stride": label_stride}  # fmt: skip
        k = model.num_classes
        self.cms: dict[Key, ConfusionMatrix] = defaultdict(lambda: ConfusionMatrix(k))
        self.phase_cms: dict[Key, ConfusionMatrix] = defaultdict(lambda: ConfusionMatrix(k))
        self.phase_frames: dict[Key, int] = defaultdict(int)
        self.per_frame = ConfusionMatrix(k)
        self.fusion_cms: dict[tuple[str, int], ConfusionMatrix] = defaultdict(
            lambda: ConfusionMatrix(k)
        )
        self.example_interval = max([n for n in self.intervals if n <= example_interval] or [1])
        self.examples: dict[str, list[np.ndarray]] | None = None
        self.frames_scored = 0

    def engine(self, clip: _Clip, v: Variant, n: int, phase: int) -> Engine:
        """The engine users run, at ``(n, phase)``, on the clip's shared caches."""
        cfg = EngineConfig(**v.engine_options(), interval=n, phase=phase, **self.config)
        return Engine(self.model, cfg, self.conv, features=clip.features, carrier=clip.carrier)

    def run_one(self, clip: _Clip, v: Variant, n: int, k: int, t: int) -> np.ndarray:
        """Labels of frame ``t`` from the engine started at keyframe ``k`` (phase ``k % n``)."""
        engine = self.engine(clip, v, n, k % n)
        (res,) = engine.run(iter(clip.frames[k : k + n + 1]), start=k, end=t + 1, wanted={t})
        return res.labels

    # -- one clip --------------------------------------------------------------------------------
    @torch.inference_mode()
    def add_clip(self, clip: EvalClip, max_frames: int | None = None) -> dict[int, np.ndarray]:
        """Score one clip; returns the per-frame labels of its labelled (or all) frames."""
        with VideoReader(clip.video) as reader:
            frames = list(reader.frames(images=True, end=max_frames))
        T = len(frames)
        shared = _Clip(self.model, frames, bool(self.config["accumulate"]))
        per_frame_engine = self.engine(shared, Variant(reference_scheme()), 1, 0)
        wanted = range(T) if clip.labels is None else sorted(t for t in clip.labels if t < T)
        maxn = max(self.intervals)
        per_frame: dict[int, np.ndarray] = {}
        for t in progress.bar(wanted, desc=f"{clip.name}: schemes at every phase", leave=False):
            shared.forget_before(t - maxn)
            (res,) = per_frame_engine.run(iter([frames[t]]), start=t, end=t + 1)
            per_frame[t] = res.labels
            target = per_frame[t] if clip.labels is None else clip.labels[t]
            self.per_frame.update(per_frame[t], target)
            self.frames_scored += 1
            for n in self.intervals:
                if n > 1:
                    self._score(shared, t, n, per_frame[t], target)
        self._add_examples(shared, clip.labels)
        return per_frame

    def _score(self, clip: _Clip, t: int, n: int, keyframe_labels: np.ndarray,
               target: np.ndarray) -> None:  # fmt: skip
        """Frame ``t`` at every phase of interval ``n`` that scores it."""
        T = len(clip.frames)
        for p in range(n):
            k = t - p
            if k < 0 or k + n > T - 1:
                continue
            for v in self.variants:
                # On its keyframe every scheme is the per-frame model (tested in test_engine).
                labels = keyframe_labels if p == 0 else self.run_one(clip, v, n, k, t)
                self.cms[v.scheme, v.fusion, n, p].update(labels, target)
                self.phase_cms[v.scheme, v.fusion, n, k % n].update(labels, target)
                self.phase_frames[v.scheme, v.fusion, n, k % n] += 1
            if p and n == 2 * p and p in FUSION_TABLE_DISTANCES:
                hw = target.shape
                self.fusion_cms["forward", p].update(self._carried(clip, k, t, hw), target)
                self.fusion_cms["backward", p].update(self._carried(clip, k + n, t, hw), target)

    def _carried(self, clip: _Clip, origin: int, t: int, hw: tuple[int, int]) -> np.ndarray:
        """Labels of ``t`` from one keyframe's features carried alone (the fusion table)."""
        feats = clip.carrier.carry(origin, clip.features(clip.frames[origin]), t)
        engine = self.engine(clip, Variant(reference_scheme()), 1, 0)
        return engine.labels(feats, hw)[0]

    def _add_examples(self, clip: _Clip, truth: dict[int, np.ndarray] | None) -> None:
        """The stretch shown in examples.png: one interval mid-clip, first clip only."""
        n, T = self.example_interval, len(clip.frames)
        if self.examples is not None or T < 2 * n + 1 or n < 2:
            return
        k = max(0, (T - n) // 2 - 1)
        stretch = range(k, k + n)
        clip.forget_before(k)
        ex: dict[str, list[np.ndarray]] = {"images": [clip.frames[i].image for i in stretch]}
        if truth is not None:
            ex["ground truth"] = [truth.get(i) for i in stretch]
        for v in [Variant(reference_scheme()), *self.variants]:
            m = n if v.traits.uses_interval else 1
            engine = self.engine(clip, v, m, k % m)
            results = engine.run(iter(clip.frames[k : k + n + 1]), start=k, end=k + n)
            ex[v.label] = [r.labels for r in results]
        self.examples = ex

    # -- results -------------------------------------------------------------------------------
    def cm(self, v: Variant, n: int, p: int) -> ConfusionMatrix:
        """Confusion matrix of variant ``v`` at interval ``n``, offset ``p`` (n=1: per-frame)."""
        if not v.traits.uses_interval or n == 1:
            return self.per_frame
        return self.cms[v.scheme, v.fusion, n, p]

    def miou_avg_min(self, v: Variant, n: int) -> tuple[float, float]:
        """The paper's "avg" (all offsets pooled) and "min" (worst offset) mIoU, in %."""
        if not v.traits.uses_interval:
            n = 1
        cms = [self.cm(v, n, p) for p in range(n)]
        pooled = ConfusionMatrix(self.model.num_classes)
        for c in cms:
            pooled.merge(c)
        return 100 * pooled.miou(), 100 * min(c.miou() for c in cms)

    def phase_rows(self) -> list[dict]:
        """``phases.csv``: mIoU per (scheme, fusion, interval, phase) and the frames it pools."""
        return [
            {"scheme": s, "fusion": f, "interval": n, "phase": phi,
             "miou": round(100 * cm.miou(), 3), "frames": self.phase_frames[s, f, n, phi]}
            for (s, f, n, phi), cm in sorted(self.phase_cms.items())
        ]  # fmt: skip
