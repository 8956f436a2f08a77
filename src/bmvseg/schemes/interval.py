"""Interpolation between two keyframes (paper Alg. 2), whatever carries the features.

Each frame between two keyframes gets the previous keyframe's features carried forward and the
next keyframe's carried backward, fused with weights ``(n-p)/n`` and ``p/n``
(:mod:`bmvseg.schemes.fusion`).  Results wait until the closing keyframe arrives (at most ``n``
frames held); when the video ends inside an interval its last frame becomes a keyframe
(reason ``"end"``), so the tail is interpolated like every other interval, with its shorter
length as ``n``.  When the closing keyframe opens another scene (a reason in
:data:`SCENE_CHANGES`) the frames before it get the forward carry alone, so no frame receives
features of a scene it does not show.

:class:`Interpolating` is that walk once; a scheme built on it says only how features are
carried (:meth:`Interpolating.carrier`): along block motion (inter-BMV) or dense optical flow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from bmvseg.models.base import Features
from bmvseg.schemes.base import FrameResult, Marked, RunContext
from bmvseg.schemes.fusion import ConvFusion, fuse
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.frame import Frame

# Keyframe reasons that open another scene: that keyframe's features are not carried back over
# the frames before it (they show the previous scene); those get the forward carry alone.
SCENE_CHANGES = ("cut",)


class Carries(Protocol):
    """Anything that carries an origin frame's features to a target frame."""

    def carry(self, origin: int, feats: Features, target: int) -> Features: ...


def interpolate(
    carrier: Carries,
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
    opening one up, so a chaining carrier costs one warp per frame even without memoisation.
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


class Interpolating:
    """The walk over intervals shared by the schemes that fuse two keyframes.

    Subclasses set ``name`` and ``traits`` and implement :meth:`carrier`; :meth:`hold` and
    :meth:`closed` let them keep per-frame state (e.g. motion) for exactly one interval.
    """

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.prev: tuple[Frame, Features] | None = None  # the keyframe opening the interval

    def hold(self, frame: Frame) -> None:
        """A frame of the current interval, or the keyframe closing it, has arrived."""

    def closed(self, keyframe: Frame) -> None:
        """Every frame before ``keyframe`` has its result."""

    def carrier(self, key: Frame, nxt: Frame, targets: list[Frame], cut: bool) -> Carries:
        """What carries ``key``'s features forward (and, unless ``cut``, ``nxt``'s backward)
        to the frames ``targets``."""
        raise NotImplementedError

    def results(self, marked: Marked) -> Iterator[FrameResult]:
        pending: list[Frame] = []
        for fr, reason in marked:
            if self.prev is not None and reason is None:
                self.hold(fr)
                pending.append(fr)
                continue
            yield from self._close_interval(pending, fr, reason or "start")
            pending = []
        if self.prev is not None and pending:  # the video ends inside an interval: close it
            last = pending.pop()
            yield from self._close_interval(pending, last, "end")

    def _close_interval(self, between: list[Frame], nxt: Frame, reason: str
                        ) -> Iterator[FrameResult]:  # fmt: skip
        """The keyframe ``nxt`` has arrived: the interval before it, then ``nxt`` itself."""
        run = self.run
        self.hold(nxt)
        feats, res = run.keyframe(nxt, reason)
        if self.prev is not None:
            key, key_feats = self.prev
            wanted = [fr for fr in between if run.want(fr.index)]
            targets = [fr.index for fr in wanted]
            cut = reason in SCENE_CHANGES
            carrier = self.carrier(key, nxt, wanted, cut)
            if cut:  # another scene: only the previous keyframe's features
                with run.timer("warp"):
                    fused = {t: carrier.carry(key.index, key_feats, t) for t in targets}
            else:
                fused = interpolate(carrier, (key.index, key_feats), (nxt.index, feats), targets,
                                    run.config.fusion, run.conv, run.timer)  # fmt: skip
            for fr in between:
                yield run.result(fr, fused.get(fr.index), fr.index - key.index)
        self.closed(nxt)
        self.prev = (nxt, feats)
        yield res
