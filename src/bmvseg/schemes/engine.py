"""The streaming engine: one pass over a video for every scheme (paper Alg. 1 and Alg. 2).

Frame indexing: frames are numbered 0.. in presentation order as decoded.  Keyframe placement
belongs to :mod:`bmvseg.schemes.keyframes` (fixed: every frame whose index is ``phase`` modulo
the interval ``n``, and frame 0; adaptive: where the stream shows change).  inter-BMV also makes
the last frame a keyframe when the video ends inside an interval, so the tail is interpolated
between two keyframes like every other interval (with its shorter length as ``n``).

Schemes differ only where the paper says they do, and each one's work lives once, here:

* ``per-frame``: feature + task network on every frame.
* ``prop-flow`` (Deep Feature Flow): keyframe features warped once to each intermediate frame by
  dense optical flow (OpenCV DIS) from the current image to the keyframe image.
* ``prop-bmv`` (Alg. 1): the keyframe's features carried forward frame by frame along each
  frame's block motion (:class:`~bmvseg.schemes.propagation.Carrier`).
* ``inter-bmv`` (Alg. 2): carried forward from the previous keyframe and backward from the next
  keyframe, fused with weights ``(n-p)/n`` and ``p/n`` (:func:`interpolate`); when the next
  keyframe opens another scene (a cut, :data:`SCENE_CHANGES`) the frames before it get the
  forward chain alone, so no frame receives features of a scene it does not show.  Output is delayed
  until the next keyframe arrives (at most ``n`` frames); memory holds one interval of frames,
  two keyframes' features and one warped map per chain.

The accuracy sweep and fusion training call the same code: they hand the engine cached features
and a memoising :class:`Carrier` and ask only for the frames they score (``wanted``).

Ranges: ``start`` must be a keyframe; ``end`` may be anything.  A range produces exactly the
labels a whole-video run gives for its frames: inter-BMV reads on to the keyframe that closes the
interval holding ``end - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from bmvseg.errors import BmvsegError
from bmvseg.models.base import Features, SegmentationModel
from bmvseg.schemes.fusion import FUSIONS, ConvFusion, fuse
from bmvseg.schemes.keyframes import PLACEMENTS, KeyframeSchedule, make_schedule
from bmvseg.schemes.labels import labels_from_logits
from bmvseg.schemes.propagation import (
    Carrier,
    Flows,
    flows_key_to_cur,
    flows_prev_to_cur,
    warp_features,
)
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.reader import Frame

SCHEMES = ("per-frame", "prop-flow", "prop-bmv", "inter-bmv")
# Keyframe reasons that open another scene: inter-BMV does not warp that keyframe's features back
# over the frames before it (they show the previous scene); those get the forward chain alone.
SCENE_CHANGES = ("cut",)
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@dataclass
class FrameResult:
    """One segmented frame, yielded in presentation order."""

    index: int
    time: float
    labels: np.ndarray  # (H, W) uint8 class ids
    keyframe: bool
    offset: int  # frames since the previous keyframe (0 on keyframes)
    frame: Frame | None = None  # the decoded frame (its RGB image is converted when first read)
    logits: torch.Tensor | None = None  # (1, K, H, W), only with keep_logits
    features: Features | None = None  # the (warped or fresh) features, only with keep_features
    reason: str | None = None  # why a keyframe is one (see bmvseg.schemes.keyframes)
    damaged: bool = False  # the decoder concealed damage in this frame or in its references

    @property
    def image(self) -> np.ndarray | None:
        """The frame's RGB image (H, W, 3) uint8, or None when the reader gave none."""
        return None if self.frame is None else self.frame.image


@dataclass
class EngineConfig:
    """What the engine runs: scheme, keyframes, fusion, and how labels are made."""
    scheme: str = "inter-bmv"
    interval: int = 5
    fusion: str = "avg"
    phase: int = 0  # fixed placement: keyframes at index % interval == phase (and frame 0)
    keyframes: str = "fixed"  # placement: "fixed" or "adaptive" (bmvseg.schemes.keyframes)
    max_interval: int | None = None  # adaptive placement's longest interval (None: 2 * interval)
    accumulate: bool = False  # compose motion and warp once per frame instead of chaining warps
    flow_preset: str = "fast"  # DIS preset for prop-flow
    label_stride: int = 1  # argmax at 1/label_stride resolution, labels upsampled by nearest
    keep_logits: bool = False
    keep_features: bool = False

    def validate(self) -> None:
        """Refuse options no run could honour, with the option named."""
        for name in ("interval", "phase", "label_stride"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise BmvsegError(f"{name} must be an integer, got {value!r}")
        if self.scheme not in SCHEMES:
            raise BmvsegError(f"unknown scheme {self.scheme!r}; choose from {', '.join(SCHEMES)}")
        if self.interval < 1:
            raise BmvsegError(f"keyframe interval must be >= 1, got {self.interval}")
        if not 0 <= self.phase < self.interval:
            raise BmvsegError(f"keyframe phase must be in 0..{self.interval - 1}, got {self.phase}")
        if self.fusion not in FUSIONS:
            raise BmvsegError(f"unknown fusion {self.fusion!r}; choose from {', '.join(FUSIONS)}")
        if self.keyframes not in PLACEMENTS:
            raise BmvsegError(
                f"unknown keyframe placement {self.keyframes!r}; choose from "
                f"{', '.join(PLACEMENTS)}"
            )
        if self.flow_preset not in DIS_PRESETS:
            raise BmvsegError(f"unknown DIS preset {self.flow_preset!r}")
        if self.label_stride < 1:
            raise BmvsegError(f"label stride must be >= 1, got {self.label_stride}")

    def schedule(self) -> KeyframeSchedule:
        """A fresh keyframe placement for one run (per-frame: every frame)."""
        n = 1 if self.scheme == "per-frame" else self.interval
        kind = "fixed" if n == 1 else self.keyframes
        return make_schedule(kind, n, self.phase if n > 1 else 0, self.max_interval)


def task_logits(
    model: SegmentationModel, feats: Features, hw: tuple[int, int], label_stride: int = 1
) -> torch.Tensor:
    """The task network's logits at ``1/label_stride`` of the image size (1 = full size)."""
    h, w = hw
    return model.task(feats, (-(-h // label_stride), -(-w // label_stride)))


def logits_to_labels(logits: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    """Arg-max class ids as uint8, brought to ``hw`` by nearest neighbour if smaller.

    Full-size bilinear logits then arg-max is the accurate order; ``label_stride`` > 1 trades a
    little boundary accuracy for a several times cheaper upsample + arg-max on small models.
    """
    labels = logits[0].argmax(0).to(torch.uint8).cpu().numpy()
    if labels.shape != hw:
        labels = cv2.resize(labels, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    return labels


def interpolate(
    carrier: Carrier,
    key: tuple[int, Features],
    nxt: tuple[int, Features],
    targets: Iterable[int],
    fusion: str,
    conv: ConvFusion | None = None,
    timer: StageTimer | None = None,
) -> dict[int, Features]:
    """Alg. 2 for one interval: the fused features of each target frame between two keyframes.

    ``key`` and ``nxt`` are (index, features) of the keyframes that open and close the interval.
    The backward chain is walked from the closing keyframe down and the forward chain from the
    opening one up, so each costs one warp per frame even without memoisation.
    """
    (k, key_feats), (m_end, nxt_feats) = key, nxt
    m = m_end - k
    timer = timer or StageTimer()
    order = sorted(targets)
    with timer("warp"):
        backward = {t: carrier.carry(m_end, nxt_feats, t) for t in reversed(order)}
        forward = {t: carrier.carry(k, key_feats, t) for t in order}
    with timer("fusion"):
        return {t: fuse(forward[t], backward[t], t - k, m, fusion, conv) for t in order}


class Engine:
    """Runs one scheme over a stream of decoded frames; see the module docstring.

    ``features`` (default: the model on the frame's image) and ``carrier`` (default: a fresh
    streaming one per run) let a caller that runs the engine many times over the same frames
    (the accuracy sweep) share work between runs.
    """

    def __init__(
        self,
        model: SegmentationModel,
        config: EngineConfig,
        conv_fusion: ConvFusion | None = None,
        timer: StageTimer | None = None,
        *,
        features: Callable[[Frame], Features] | None = None,
        carrier: Carrier | None = None,
    ) -> None:
        config.validate()
        if config.scheme == "inter-bmv" and config.fusion == "conv" and conv_fusion is None:
            raise BmvsegError("conv fusion needs fusion weights (train them: bmvseg train-fusion)")
        self.model = model.eval()
        self.cfg = config
        self.conv = conv_fusion.eval() if conv_fusion is not None else None
        self.timer = timer or StageTimer()
        self._features = features
        self._shared_carrier = carrier
        self._dis = None

    # -- the two networks ------------------------------------------------------------------
    def features(self, frame: Frame) -> Features:
        """The feature network on one frame (or the caller's cached features of it)."""
        with self.timer("feature"):
            if self._features is not None:
                return self._features(frame)
            if frame.image is None:
                raise ValueError("the engine needs decoded images (VideoReader.frames())")
            return self.model.features(self.model.preprocess(frame.image))

    def labels(
        self, feats: Features, hw: tuple[int, int]
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """The task network and arg-max: class ids at the image size ``hw`` (and the full-size
        logits with ``keep_logits``).

        The lean path (a model whose task is "low-resolution logits, then bilinear upsample")
        never builds the full-size logits: :func:`bmvseg.schemes.labels.labels_from_logits`
        gives the same labels, ties aside, at a fraction of the cost.
        """
        cfg, model = self.cfg, self.model
        if cfg.label_stride == 1 and not cfg.keep_logits and model.has_lowres_logits:
            with self.timer("task"):
                low = model.logits(feats)
            with self.timer("argmax"):  # at the padded size, cropped (see models.base)
                labels = labels_from_logits(low, model.padded_size(hw))
                return np.ascontiguousarray(labels[: hw[0], : hw[1]]), None
        with self.timer("task"):
            logits = task_logits(model, feats, hw, cfg.label_stride)
        with self.timer("argmax"):
            return logits_to_labels(logits, hw), logits

    # -- the run ---------------------------------------------------------------------------
    def run(
        self,
        frames: Iterable[Frame],
        start: int = 0,
        end: int | None = None,
        wanted: Container[int] | None = None,
    ) -> Iterator[FrameResult]:
        """Segment ``frames`` (which must begin at ``start``), yielding results for [start, end).

        With ``wanted``, only those frames' results are yielded, and work no wanted frame
        needs (warps, fusion, task network) is skipped.
        """
        cfg = self.cfg
        schedule = cfg.schedule()
        if not schedule.stable(start):
            raise BmvsegError(
                f"range start {start} is not a keyframe every run places (fixed: frame "
                f"{cfg.phase} + multiples of {cfg.interval}; adaptive: its anchors)"
            )
        run = _Run(self, wanted)
        body = {
            "per-frame": run.per_frame,
            "prop-flow": run.prop_flow,
            "prop-bmv": run.prop_bmv,
            "inter-bmv": run.inter_bmv,
        }[cfg.scheme]
        marked = _after_damage(schedule.mark(_timed(frames, self.timer)))
        with torch.inference_mode():
            for res in body(marked):
                if end is not None and res.index >= end:
                    break
                self.timer.frame_done()
                if wanted is None or res.index in wanted:
                    yield res
                if end is not None and res.index >= end - 1:
                    break

    def _dis_flow(self):
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.cfg.flow_preset])
        return self._dis


class _Run:
    """The state of one run: the frames of the current interval and the chains from its keys."""

    def __init__(self, engine: Engine, wanted: Container[int] | None) -> None:
        self.e = engine
        self.wanted = wanted
        self.fields: dict[int, Flows] = {}
        self.frames: dict[int, Frame] = {}
        self.carrier = engine._shared_carrier or Carrier(
            self._flows_of, accumulate=engine.cfg.accumulate
        )
        self.owns_carrier = engine._shared_carrier is None
        self.hw: tuple[int, int] | None = None  # the image size, from the first keyframe
        self.prev: tuple[Frame, Features] | None = None  # inter-BMV: the last keyframe

    def result(
        self, frame: Frame, feats: Features | None, offset: int, reason: str | None = None
    ) -> FrameResult:
        """The frame's labels from its (fresh or carried) features; a stub if not wanted."""
        wanted = self.want(frame.index)
        labels, logits = self.e.labels(feats, self.hw) if wanted else (None, None)
        cfg = self.e.cfg
        return FrameResult(
            index=frame.index,
            time=frame.time,
            labels=labels,
            keyframe=reason is not None,
            offset=offset,
            frame=frame if wanted else None,
            logits=logits if cfg.keep_logits else None,
            features=feats if cfg.keep_features and wanted else None,
            reason=reason,
            damaged=getattr(frame, "damaged", False),
        )

    def want(self, index: int) -> bool:
        return self.wanted is None or index in self.wanted

    def _flows_of(self, j: int, like: Features) -> Flows:
        if j not in self.fields:
            self.fields[j] = flows_prev_to_cur(self.frames[j].motion, like, self.e.model.strides)
        return self.fields[j]

    def keep(self, frame: Frame, keyframe: bool) -> None:
        """Hold a frame's motion until the chains through it are done."""
        if keyframe and self.owns_carrier:
            self.carrier.forget_before(frame.index)
            for j in [j for j in self.frames if j < frame.index]:
                self.frames.pop(j)
                self.fields.pop(j, None)
        self.frames[frame.index] = frame

    def key(self, frame: Frame, reason: str) -> tuple[Features, FrameResult]:
        """A keyframe: the feature network, and its result."""
        if self.hw is None:
            self.hw = frame.image.shape[:2]
        feats = self.e.features(frame)
        return feats, self.result(frame, feats, 0, reason)

    # -- one body per scheme -------------------------------------------------------------------
    def per_frame(self, marked: Iterator[tuple[Frame, str | None]]) -> Iterator[FrameResult]:
        for fr, reason in marked:
            yield self.key(fr, reason or "start")[1]

    def prop_bmv(self, marked: Iterator[tuple[Frame, str | None]]) -> Iterator[FrameResult]:
        key: tuple[int, Features] | None = None
        for fr, reason in marked:
            self.keep(fr, reason is not None)
            if reason is not None or key is None:
                feats, res = self.key(fr, reason or "start")
                key = (fr.index, feats)
                yield res
                continue
            feats = None
            if self.want(fr.index):
                with self.e.timer("warp"):
                    feats = self.carrier.carry(key[0], key[1], fr.index)
            yield self.result(fr, feats, fr.index - key[0])

    def prop_flow(self, marked: Iterator[tuple[Frame, str | None]]) -> Iterator[FrameResult]:
        key: tuple[Frame, Features, np.ndarray] | None = None
        for fr, reason in marked:
            if reason is not None or key is None:
                feats, res = self.key(fr, reason or "start")
                key = (fr, feats, cv2.cvtColor(fr.image, cv2.COLOR_RGB2GRAY))
                yield res
                continue
            feats = None
            if self.want(fr.index):
                key_frame, key_feats, key_gray = key
                with self.e.timer("flow"):
                    gray = cv2.cvtColor(fr.image, cv2.COLOR_RGB2GRAY)
                    flow = self.e._dis_flow().calc(gray, key_gray, None)  # pull: key -> current
                with self.e.timer("warp"):
                    feats = warp_features(
                        key_feats, flows_key_to_cur(flow, key_feats, self.e.model.strides)
                    )
            yield self.result(fr, feats, fr.index - key[0].index)

    def inter_bmv(self, marked: Iterator[tuple[Frame, str | None]]) -> Iterator[FrameResult]:
        pending: list[Frame] = []
        for fr, reason in marked:
            if self.prev is not None and reason is None:
                self.keep(fr, False)
                pending.append(fr)
                continue
            yield from self.close(pending, fr, reason or "start")
            pending = []
        if self.prev is not None and pending:  # the video ends inside an interval: close it
            last = pending.pop()
            yield from self.close(pending, last, "end")

    def close(self, between: list[Frame], nxt: Frame, reason: str) -> Iterator[FrameResult]:
        """The keyframe ``nxt`` has arrived: the interval before it, then ``nxt`` itself."""
        self.frames[nxt.index] = nxt
        feats, res = self.key(nxt, reason)
        if self.prev is not None:
            key = self.prev
            targets = [fr.index for fr in between if self.want(fr.index)]
            if reason in SCENE_CHANGES:  # another scene: only the previous keyframe's features
                with self.e.timer("warp"):
                    fused = {t: self.carrier.carry(key[0].index, key[1], t) for t in targets}
            else:
                fused = interpolate(
                    self.carrier,
                    (key[0].index, key[1]),
                    (nxt.index, feats),
                    targets,
                    self.e.cfg.fusion,
                    self.e.conv,
                    self.e.timer,
                )
            for fr in between:
                yield self.result(fr, fused.get(fr.index), fr.index - key[0].index)
        self.keep(nxt, True)
        self.prev = (nxt, feats)
        yield res


def _after_damage(
    marked: Iterator[tuple[Frame, str | None]],
) -> Iterator[tuple[Frame, str | None]]:
    """The first clean frame after frames the decoder concealed becomes a keyframe.

    Concealed pixels and the motion of damaged frames are wrong until the stream's next I-frame
    (:mod:`bmvseg.video.reader`); a keyframe there stops clean frames from receiving features
    warped from them.  The damaged frames themselves keep their labels, marked ``damaged``.
    """
    damaged = False
    for fr, reason in marked:
        clean = not getattr(fr, "damaged", False)
        if damaged and clean and reason is None:
            reason = "after damage"
        damaged = not clean
        yield fr, reason


def _timed(frames: Iterable[Frame], timer: StageTimer) -> Iterator[Frame]:
    """Iterate frames, charging the time spent in the reader to ``decode``."""
    it = iter(frames)
    while True:
        with timer("decode"):
            fr = next(it, None)
        if fr is None:
            return
        yield fr
