"""The streaming engine: one pass over a video for any scheme (paper Alg. 1 and Alg. 2).

Frame indexing: frames are numbered 0.. in presentation order as decoded.  Keyframe placement
belongs to :mod:`bmvseg.schemes.keyframes` (fixed: every frame whose index is ``phase`` modulo
the interval ``n``, and frame 0; adaptive: where the stream shows change; both mark cuts); the
first clean frame after concealed damage is also a keyframe.  The schemes themselves are
classes listed in :mod:`bmvseg.schemes.registry` (one module each, see
:mod:`bmvseg.schemes.base`); the engine builds one per run, hands it the marked frames and owns
what they all share: the two networks, the label arg-max, timing, and ranges.

The accuracy sweep and fusion training call the same code: they hand the engine cached features
and a memoising :class:`Carrier` and ask only for the frames they score (``wanted``).

Ranges: ``start`` must be a keyframe; ``end`` may be anything.  A range produces exactly the
labels a whole-video run gives for its frames: a scheme that fuses two keyframes reads on to the
keyframe that closes the interval holding ``end - 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator

import cv2
import numpy as np
import torch

from bmvseg.errors import BmvsegError
from bmvseg.models.base import Features, SegmentationModel, upsample
from bmvseg.models.class_space import TaskCut, task_cut
from bmvseg.schemes.base import FrameResult, Marked, RunContext
from bmvseg.schemes.config import EngineConfig
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.keyframes import KeyframeSchedule
from bmvseg.schemes.labels import labels_from_lowres_logits
from bmvseg.schemes.propagation import Carrier
from bmvseg.schemes.registry import SCHEMES, scheme_class
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.frame import Frame

__all__ = ["SCHEMES", "Engine", "EngineConfig", "FrameResult", "argmax_labels", "task_logits"]


def task_logits(
    model: SegmentationModel, feats: Features, hw: tuple[int, int], label_stride: int = 1
) -> torch.Tensor:
    """The task network's logits at ``1/label_stride`` of the image size (1 = full size)."""
    h, w = hw
    return model.task(feats, (-(-h // label_stride), -(-w // label_stride)))


def argmax_labels(logits: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    """The dense path: arg-max of the task network's own (upsampled) logits as uint8 class ids,
    brought to ``hw`` by nearest neighbour if smaller.

    Full-size bilinear logits then arg-max is the accurate order; ``label_stride`` > 1 trades a
    little boundary accuracy for a several times cheaper upsample + arg-max on small models.
    The lean path (:func:`~bmvseg.schemes.labels.labels_from_lowres_logits`) gives the
    full-size labels without building the full-size logits.
    """
    labels = logits[0].argmax(0).to(torch.uint8).cpu().numpy()
    if labels.shape != hw:
        labels = cv2.resize(labels, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    return labels


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
        if not isinstance(config, EngineConfig):
            raise BmvsegError(f"config must be an EngineConfig, got {type(config).__name__}")
        if timer is not None and not isinstance(timer, StageTimer):
            raise BmvsegError(f"timer must be a StageTimer or None, got {timer!r}")
        if config.traits.fuses and config.fusion == "conv" and conv_fusion is None:
            raise BmvsegError("conv fusion needs fusion weights (train them: bmvseg train-fusion)")
        self.model = model.eval()
        self.cfg = config
        self.conv = conv_fusion.eval() if conv_fusion is not None else None
        self.timer = timer or StageTimer()
        self._features = features
        self._shared_carrier = carrier
        self._cut: TaskCut | None | bool = False  # False: not asked yet

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
        logits with ``keep_logits``)."""
        cfg, model = self.cfg, self.model
        if model.has_lowres_logits:
            with self.timer("task"):
                low = model.logits(feats)
            return self.labels_of_logits(low, hw)
        with self.timer("task"):
            logits = task_logits(model, feats, hw, cfg.label_stride)
        with self.timer("argmax"):
            return argmax_labels(logits, hw), logits

    def labels_of_logits(
        self, low: torch.Tensor, hw: tuple[int, int]
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """Class ids at ``hw`` from low-resolution logits ``(1, K, h, w)``, fresh or carried.

        The lean path never builds the full-size logits: :func:`labels_from_lowres_logits`
        gives the labels of their upsample, ties aside, at a fraction of the cost; with
        ``keep_logits`` or ``label_stride`` > 1 the logits are upsampled as the task does.
        """
        cfg, (h, w) = self.cfg, hw
        ph, pw = self.model.padded_size(hw)  # what the logits cover (models.base pads inputs)
        if cfg.label_stride == 1 and not cfg.keep_logits:
            with self.timer("argmax"):
                labels = labels_from_lowres_logits(low, (ph, pw))
                return np.ascontiguousarray(labels[:h, :w]), None
        s = cfg.label_stride
        with self.timer("task"):
            logits = upsample(low, (-(-ph // s), -(-pw // s)))[..., : -(-h // s), : -(-w // s)]
        with self.timer("argmax"):
            return argmax_labels(logits, hw), logits

    def logits(self, feats: Features) -> torch.Tensor:
        """The task network's low-resolution logits (a model with ``has_lowres_logits``)."""
        with self.timer("task"):
            return self.model.logits(feats)

    def task_cut(self, like: Features) -> TaskCut | None:
        """Where the task network may be cut for carrying (the class space of
        :mod:`bmvseg.models.class_space`) on features shaped like ``like``; asked once."""
        if self._cut is False:
            self._cut = task_cut(self.model, like)
        return self._cut

    # -- the run ---------------------------------------------------------------------------
    def run(
        self,
        frames: Iterable[Frame],
        start: int = 0,
        end: int | None = None,
        wanted: Container[int] | None = None,
        schedule: KeyframeSchedule | None = None,
    ) -> Iterator[FrameResult]:
        """Segment ``frames`` (which must begin at ``start``), yielding results for [start, end).

        With ``wanted``, only those frames' results are yielded, and work no wanted frame
        needs (warps, fusion, task network) is skipped.  ``schedule`` replaces the config's
        keyframe placement for this run (a live run's: :mod:`bmvseg.schemes.keep_up`; a
        measurement's placement no option names, e.g. fixed placement without its cut test).
        """
        cfg = self.cfg
        schedule = cfg.schedule() if schedule is None else schedule
        if not schedule.stable(start):
            raise BmvsegError(
                f"range start {start} is not a keyframe every run places (fixed: frame "
                f"{cfg.phase} + multiples of {cfg.interval}; adaptive: its anchors)"
            )
        scheme = scheme_class(cfg.scheme)(RunContext(self, wanted, self._shared_carrier))
        marked = _after_damage(schedule.mark(_timed(frames, self.timer)))
        with torch.inference_mode():
            for res in scheme.results(marked):
                if end is not None and res.index >= end:
                    break
                self.timer.frame_done()
                if wanted is None or res.index in wanted:
                    yield res
                if end is not None and res.index >= end - 1:
                    break


def _after_damage(marked: Marked) -> Marked:
    """The first clean frame after frames the decoder concealed becomes a keyframe.

    Concealed pixels and the motion of damaged frames are wrong until the stream's next I-frame
    (:mod:`bmvseg.video.reader`); a keyframe there stops clean frames after the damage from
    receiving features warped from them, as the interval rule (never fuse into damage,
    :func:`bmvseg.schemes.interval.scene_break`) does for the clean frames before it.  The
    damaged frames themselves keep their labels, marked ``damaged``.
    """
    damaged = False
    for fr, mark in marked:
        clean = not getattr(fr, "damaged", False)
        if damaged and clean and not mark.keyframe:
            mark = mark.placed("after damage")
        damaged = not clean
        yield fr, mark


def _timed(frames: Iterable[Frame], timer: StageTimer) -> Iterator[Frame]:
    """Iterate frames, charging the time spent in the reader to ``decode``."""
    it = iter(frames)
    while True:
        with timer("decode"):
            fr = next(it, None)
        if fr is None:
            return
        yield fr
