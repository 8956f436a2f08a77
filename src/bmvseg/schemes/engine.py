"""The streaming engine: one pass over a video for every scheme (paper Alg. 1 and Alg. 2).

Frame indexing: frames are numbered 0.. in presentation order as decoded; keyframes are the
frames whose index is a multiple of the interval ``n`` (frame 0 always).  inter-BMV also makes
the last frame a keyframe when the video ends inside an interval, so the tail is interpolated
between two keyframes like every other interval (with its shorter length as ``n``).

Schemes differ only where the paper says they do:

* ``per-frame``: feature + task network on every frame.
* ``prop-flow`` (Deep Feature Flow): keyframe features warped once to each intermediate frame by
  dense optical flow (OpenCV DIS) from the current image to the keyframe image.
* ``prop-bmv`` (Alg. 1): the cached features warped one frame forward with each frame's block
  motion field, chained from the keyframe.
* ``inter-bmv`` (Alg. 2): forward chain from the previous keyframe and backward chain from the
  next keyframe, fused with weights ``(n-p)/n`` and ``p/n``.  Output is delayed until the next
  keyframe arrives (at most ``n`` frames); memory holds one interval of frames and motion fields,
  two keyframes' features and the backward-warped maps of that interval.

Ranges: ``start`` must be a keyframe; ``end`` may be anything.  A range produces exactly the
labels a whole-video run gives for its frames: inter-BMV reads on to the keyframe that closes the
interval holding ``end - 1``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from bmvseg.errors import BmvsegError
from bmvseg.models.base import Features, SegmentationModel
from bmvseg.schemes.fusion import FUSIONS, ConvFusion, fuse
from bmvseg.schemes.propagation import (
    Chain,
    dense_flows,
    field_flows,
    propagate,
    reverse,
    warp_features,
)
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.reader import Frame

SCHEMES = ("per-frame", "prop-flow", "prop-bmv", "inter-bmv")
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
    image: np.ndarray | None = None  # the decoded RGB frame, when the reader gave it
    logits: torch.Tensor | None = None  # (1, K, H, W), only with keep_logits
    features: Features | None = None  # the (warped or fresh) features, only with keep_features


@dataclass
class EngineConfig:
    scheme: str = "inter-bmv"
    interval: int = 5
    fusion: str = "avg"
    accumulate: bool = False  # compose motion and warp once per frame instead of chaining warps
    flow_preset: str = "fast"  # DIS preset for prop-flow
    label_stride: int = 1  # argmax at 1/label_stride resolution, labels upsampled by nearest
    keep_logits: bool = False
    keep_features: bool = False

    def validate(self) -> None:
        if self.scheme not in SCHEMES:
            raise BmvsegError(f"unknown scheme {self.scheme!r}; choose from {', '.join(SCHEMES)}")
        if self.interval < 1:
            raise BmvsegError(f"keyframe interval must be >= 1, got {self.interval}")
        if self.fusion not in FUSIONS:
            raise BmvsegError(f"unknown fusion {self.fusion!r}; choose from {', '.join(FUSIONS)}")
        if self.flow_preset not in DIS_PRESETS:
            raise BmvsegError(f"unknown DIS preset {self.flow_preset!r}")
        if self.label_stride < 1:
            raise BmvsegError(f"label stride must be >= 1, got {self.label_stride}")


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


class Engine:
    """Runs one scheme over a stream of decoded frames; see the module docstring."""

    def __init__(
        self,
        model: SegmentationModel,
        config: EngineConfig,
        conv_fusion: ConvFusion | None = None,
        timer: StageTimer | None = None,
    ) -> None:
        config.validate()
        if config.scheme == "inter-bmv" and config.fusion == "conv" and conv_fusion is None:
            raise BmvsegError("conv fusion needs fusion weights (train them: bmvseg train-fusion)")
        self.model = model.eval()
        self.cfg = config
        self.conv = conv_fusion.eval() if conv_fusion is not None else None
        self.timer = timer or StageTimer()
        self._dis = None

    # -- the two networks ------------------------------------------------------------------
    def features(self, frame: Frame) -> Features:
        if frame.image is None:
            raise ValueError("the engine needs decoded images (VideoReader.frames(images=True))")
        with self.timer("feature"):
            return self.model.features(self.model.preprocess(frame.image))

    def result(self, frame: Frame, feats: Features, keyframe: bool, offset: int) -> FrameResult:
        h, w = frame.image.shape[:2]
        with self.timer("task"):
            logits = task_logits(self.model, feats, (h, w), self.cfg.label_stride)
        with self.timer("argmax"):
            labels = logits_to_labels(logits, (h, w))
        return FrameResult(
            index=frame.index,
            time=frame.time,
            labels=labels,
            keyframe=keyframe,
            offset=offset,
            image=frame.image,
            logits=logits if self.cfg.keep_logits else None,
            features=feats if self.cfg.keep_features else None,
        )

    def is_keyframe(self, index: int) -> bool:
        return index % self.cfg.interval == 0

    # -- the run ---------------------------------------------------------------------------
    def run(
        self, frames: Iterable[Frame], start: int = 0, end: int | None = None
    ) -> Iterator[FrameResult]:
        """Segment ``frames`` (which must begin at ``start``), yielding results for [start, end)."""
        if not self.is_keyframe(start):
            raise BmvsegError(
                f"range start {start} is not a keyframe (a multiple of {self.cfg.interval})"
            )
        n = self.cfg.interval
        last_needed = None if end is None else end - 1
        # The frame after which nothing more is needed: inter-BMV waits for the closing keyframe.
        stop = None
        if last_needed is not None:
            stop = last_needed if self.cfg.scheme != "inter-bmv" else -(-last_needed // n) * n
        source = _timed(frames, self.timer, stop)
        body = {
            "per-frame": self._per_frame,
            "prop-flow": self._prop_flow,
            "prop-bmv": self._prop_bmv,
            "inter-bmv": self._inter_bmv,
        }[self.cfg.scheme]
        with torch.inference_mode():
            for res in body(source, start):
                if end is not None and res.index >= end:
                    break
                self.timer.frame_done()
                yield res

    def _per_frame(self, frames: Iterator[Frame], start: int) -> Iterator[FrameResult]:
        for fr in frames:
            yield self.result(fr, self.features(fr), True, 0)

    def _prop_bmv(self, frames: Iterator[Frame], start: int) -> Iterator[FrameResult]:
        chain: Chain | None = None
        key_index = start
        for fr in frames:
            if chain is None or self.is_keyframe(fr.index):
                feats = self.features(fr)
                chain, key_index = Chain(feats, self.cfg.accumulate), fr.index
                yield self.result(fr, feats, True, 0)
                continue
            with self.timer("warp"):
                feats = chain.step(field_flows(fr.motion, chain.start, self.model.strides))
            yield self.result(fr, feats, False, fr.index - key_index)

    def _prop_flow(self, frames: Iterator[Frame], start: int) -> Iterator[FrameResult]:
        key: Features | None = None
        key_gray = None
        key_index = start
        for fr in frames:
            if self.is_keyframe(fr.index) or key is None:
                key, key_index = self.features(fr), fr.index
                key_gray = cv2.cvtColor(fr.image, cv2.COLOR_RGB2GRAY)
                yield self.result(fr, key, True, 0)
                continue
            with self.timer("flow"):
                gray = cv2.cvtColor(fr.image, cv2.COLOR_RGB2GRAY)
                flow = self._dis_flow().calc(gray, key_gray, None)  # pull: key -> current
            with self.timer("warp"):
                feats = warp_features(key, dense_flows(flow, key, self.model.strides))
            yield self.result(fr, feats, False, fr.index - key_index)

    def _dis_flow(self):
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(DIS_PRESETS[self.cfg.flow_preset])
        return self._dis

    def _inter_bmv(self, frames: Iterator[Frame], start: int) -> Iterator[FrameResult]:
        prev: tuple[Frame, Features] | None = None
        pending: list[Frame] = []
        for fr in frames:
            if prev is not None and not self.is_keyframe(fr.index):
                pending.append(fr)
                continue
            feats = self.features(fr)
            if prev is not None:
                yield from self._interpolate(prev, pending, fr, feats)
            yield self.result(fr, feats, True, 0)
            prev, pending = (fr, feats), []
        if prev is not None and pending:  # the video ends inside an interval: close it
            last = pending.pop()
            feats = self.features(last)
            yield from self._interpolate(prev, pending, last, feats)
            yield self.result(last, feats, True, 0)

    def _interpolate(
        self, prev: tuple[Frame, Features], between: list[Frame], nxt: Frame, nxt_feats: Features
    ) -> Iterator[FrameResult]:
        """Alg. 2 for one interval: fuse forward- and backward-propagated keyframe features."""
        key, key_feats = prev
        m = nxt.index - key.index
        strides = self.model.strides
        with self.timer("warp"):
            fields = [fr.motion for fr in between] + [nxt.motion]  # mv[k+1] .. mv[k+m]
            flows = [field_flows(f, key_feats, strides) for f in fields]  # each field once
            fwd_steps = flows[:-1]
            # Backward: from k+m down to k+1, each step undoing the motion of the later frame.
            bwd_steps = [reverse(f) for f in flows[:0:-1]]
            backward = propagate(nxt_feats, bwd_steps, self.cfg.accumulate)[::-1]  # k+1 .. k+m-1
            forward = propagate(key_feats, fwd_steps, self.cfg.accumulate)
        for p, fr in enumerate(between, start=1):
            with self.timer("fusion"):
                fused = fuse(forward[p - 1], backward[p - 1], p, m, self.cfg.fusion, self.conv)
            yield self.result(fr, fused, False, p)


def _timed(frames: Iterable[Frame], timer: StageTimer, stop: int | None) -> Iterator[Frame]:
    """Iterate frames, charging the time spent in the reader to ``decode``; end after ``stop``."""
    it = iter(frames)
    while True:
        with timer("decode"):
            fr = next(it, None)
        if fr is None:
            return
        yield fr
        if stop is not None and fr.index >= stop:
            return
