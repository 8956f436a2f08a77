"""What a scheme is: its :class:`Traits`, the :class:`Scheme` protocol, and what one run shares.

A scheme is a class with a ``name``, its ``traits`` and a ``results`` method that turns the
marked frames of one run (each with its :class:`~bmvseg.schemes.keyframes.Mark`: why it is a
keyframe, if it is one, and whether it is a cut) into
:class:`FrameResult` s in presentation order.  One object is made per run and holds that
scheme's state (its keyframes, pending frames, optical-flow instance); what every scheme of a
run shares (the networks, the frames wanted, the image size) is the :class:`RunContext` it is
given.  The engine, the runner, the benchmark and the CLI ask :class:`Traits`, never names;
:mod:`bmvseg.schemes.registry` lists the schemes.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from bmvseg.models.base import Features, SegmentationModel
from bmvseg.models.class_space import TaskCut
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.keyframes import NOT_KEYFRAME, Mark, Marked
from bmvseg.schemes.propagation import Carrier, Flows, flows_prev_to_cur
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.frame import Frame


@dataclass(frozen=True)
class Traits:
    """What a scheme needs and does, asked by everything that is not the scheme itself."""

    uses_interval: bool  # keyframes every ``interval`` frames (False: every frame is one)
    fuses: bool  # fuses features of two keyframes (``fusion`` applies; conv needs weights)
    needs_pictures: bool  # reads RGB images of frames that are not keyframes
    needs_motion: bool  # reads the codec's motion vectors
    delays_output: bool  # a frame's result waits for the next keyframe (at most one interval)


@dataclass
class FrameResult:
    """One segmented frame, yielded in presentation order."""

    index: int
    time: float
    labels: np.ndarray  # (H, W) uint8 class ids
    offset: int  # frames since the previous keyframe (0 on keyframes)
    frame: Frame | None = None  # the decoded frame (its RGB image is converted when first read)
    logits: torch.Tensor | None = None  # (1, K, H, W), only with keep_logits
    features: Features | None = None  # the (warped or fresh) features, only with keep_features
    damaged: bool = False  # the decoder concealed damage in this frame or in its references
    reasons: tuple[str, ...] = ()  # every reason it is a keyframe (bmvseg.schemes.keyframes)
    cut: bool = False  # it opens another scene (keyframe or not; the placement's cut test)
    sources: tuple[int, ...] = ()  # the keyframes its features come from (a keyframe: itself)

    @property
    def keyframe(self) -> bool:
        """Whether the feature network ran on it (it has a reason to be a keyframe)."""
        return bool(self.reasons)

    @property
    def reason(self) -> str | None:
        """The reason that placed it as a keyframe (the first of ``reasons``), else None."""
        return self.reasons[0] if self.reasons else None

    @property
    def image(self) -> np.ndarray | None:
        """The frame's RGB image (H, W, 3) uint8, or None when the reader gave none."""
        return None if self.frame is None else self.frame.image


class Scheme(Protocol):
    """One way of labelling a video; a fresh object per run holds its state."""

    name: ClassVar[str]
    traits: ClassVar[Traits]

    def __init__(self, run: RunContext) -> None: ...

    def results(self, marked: Marked) -> Iterator[FrameResult]:
        """One result per marked frame, in presentation order."""
        ...


class Networks(Protocol):
    """What a scheme asks of the engine that runs it (:class:`~bmvseg.schemes.engine.Engine`)."""

    cfg: Any  # its EngineConfig (bmvseg.schemes.config, which reads the traits declared here)
    model: SegmentationModel
    conv: ConvFusion | None
    timer: StageTimer

    def features(self, frame: Frame) -> Features: ...

    def labels(self, feats: Features, hw: tuple[int, int]
               ) -> tuple[np.ndarray, torch.Tensor | None]: ...  # fmt: skip

    def labels_of_logits(self, low: torch.Tensor, hw: tuple[int, int]
                         ) -> tuple[np.ndarray, torch.Tensor | None]: ...  # fmt: skip

    def logits(self, feats: Features) -> torch.Tensor: ...

    def task_cut(self, like: Features) -> TaskCut | None: ...


class RunContext:
    """What the scheme of one run shares with the engine: the networks, the frames wanted,
    the image size, and (for motion schemes) the engine's shared carrier if it has one.

    **Class space.**  What a scheme carries from a keyframe (:meth:`keyframe`'s first value)
    is the keyframe's features, or, when the run has a *task cut*, those features taken
    through the task network's narrowest per-pixel affine part, as a one-tensor tuple: the
    logits themselves when the whole task is affine (SegFormer's context split: 19 channels
    instead of 768), else a narrower map (``enet_lite``: 32 channels after its first 1x1
    convolution and batch norm, instead of 64) that :meth:`result` takes through the rest of
    the task.  Schemes warp and avg-fuse either the same way.  A run has a cut when
    :func:`~bmvseg.models.class_space.task_cut` finds one, the scheme has an interval, fusion
    (if it fuses) is ``avg``, features are not kept (``keep_features``) and no carrier is
    shared with other runs (the accuracy sweep memoises feature chains).  Bilinear warp
    weights and avg fusion weights each add up to 1, so carrying after an affine map equals
    carrying before it up to float rounding: labels differ only where two classes' scores
    are that close.  Motion cells with invalid vectors change nothing: their vectors are
    filled in motion space (:func:`bmvseg.warp.warp.fill_invalid`) before any map is warped,
    so both spaces are warped by the same flow, and samples outside the map clamp to the
    border with weights that still add up to 1.
    """

    def __init__(self, engine: Networks, wanted: Container[int] | None,
                 carrier: Carrier | None = None) -> None:  # fmt: skip
        self.engine = engine
        self.config = engine.cfg
        self.timer = engine.timer
        self.model = engine.model
        self.conv = engine.conv
        self.wanted = wanted
        self.shared_carrier = carrier
        self.hw: tuple[int, int] | None = None  # the image size, from the first keyframe
        self.task_cut: TaskCut | None = None  # the task's cut for carrying (see the class)
        self._cut_asked = False  # decided at the first keyframe

    def want(self, index: int) -> bool:
        """Whether the caller asked for this frame's result (work for others can be skipped)."""
        return self.wanted is None or index in self.wanted

    def keyframe(self, frame: Frame, mark: Mark) -> tuple[Features, FrameResult]:
        """A keyframe (``"start"`` if ``mark`` gives no reason): the feature network, and its
        result.  The first value is what the scheme carries: the features, or the task cut's
        map in class space (see the class)."""
        if self.hw is None:
            self.hw = frame.image.shape[:2]
        feats = self.engine.features(frame)
        cut = self._task_cut(feats)
        if cut is not None:
            with self.timer("task"):
                feats = (cut.carry(feats[0]),)
        return feats, self.result(frame, feats, 0, mark if mark.keyframe else mark.placed("start"))

    def _task_cut(self, feats: Features) -> TaskCut | None:
        if not self._cut_asked:
            self._cut_asked = True
            cfg = self.config
            traits = cfg.traits
            if (
                traits.uses_interval
                and (cfg.fusion == "avg" or not traits.fuses)
                and not cfg.keep_features
                and self.shared_carrier is None
            ):
                self.task_cut = self.engine.task_cut(feats)
        return self.task_cut

    def result(
        self,
        frame: Frame,
        feats: Features | None,
        offset: int,
        mark: Mark = NOT_KEYFRAME,
        sources: tuple[int, ...] | None = None,
    ) -> FrameResult:
        """The frame's labels from what was carried to it (features, or the task cut's map in
        class space) or its fresh features; a stub if not wanted.

        ``sources`` defaults to the previous keyframe, ``offset`` frames back (itself on one).
        """
        wanted = self.want(frame.index)
        labels, logits = None, None
        if wanted and self.task_cut is not None:
            with self.timer("task"):
                low = self.task_cut.logits(feats[0])
            labels, logits = self.engine.labels_of_logits(low, self.hw)
        elif wanted:
            labels, logits = self.engine.labels(feats, self.hw)
        cfg = self.config
        return FrameResult(
            index=frame.index,
            time=frame.time,
            labels=labels,
            offset=offset,
            frame=frame if wanted else None,
            logits=logits if cfg.keep_logits else None,
            features=feats if cfg.keep_features and wanted else None,
            damaged=getattr(frame, "damaged", False),
            reasons=mark.reasons,
            cut=mark.cut,
            sources=(frame.index - offset,) if sources is None else sources,
        )


class MotionChains:
    """Features carried along the frames' block motion, each frame's motion held only until
    every chain through it is done (the state of the motion-vector schemes).

    A caller that runs many engines over the same frames (the accuracy sweep) shares one
    memoising :class:`Carrier`; then that caller owns what is forgotten.
    """

    def __init__(self, run: RunContext) -> None:
        self.strides = run.model.strides
        self.fields: dict[int, Flows] = {}
        self.frames: dict[int, Frame] = {}
        self.owns_carrier = run.shared_carrier is None
        self.carrier: Carrier = run.shared_carrier or Carrier(
            self._flows_of, accumulate=run.config.accumulate
        )
        self.carry: Callable[[int, Features, int], Features] = self.carrier.carry

    def _flows_of(self, j: int, like: Features) -> Flows:
        if j not in self.fields:
            self.fields[j] = flows_prev_to_cur(self.frames[j].motion, like, self.strides)
        return self.fields[j]

    def keep(self, frame: Frame, keyframe: bool) -> None:
        """Hold a frame's motion; a keyframe ends every chain that began before it."""
        if keyframe and self.owns_carrier:
            self.carrier.forget_before(frame.index)
            for j in [j for j in self.frames if j < frame.index]:
                self.frames.pop(j)
                self.fields.pop(j, None)
        self.frames[frame.index] = frame
