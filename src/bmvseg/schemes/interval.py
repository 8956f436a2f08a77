"""Interpolation between two keyframes (paper Alg. 2), whatever carries the features.

Each frame between two keyframes gets the previous keyframe's features carried forward and the
next keyframe's carried backward, fused with weights ``(n-p)/n`` and ``p/n``
(:mod:`bmvseg.schemes.fusion`).  Results wait until the closing keyframe arrives (at most ``n``
frames held); when the video ends inside an interval its last frame becomes a keyframe
(reason ``"end"``), so the tail is interpolated like every other interval, with its shorter
length as ``n``.

**Never across a cut or into damage** (:func:`scene_break`).  Two keyframes are fused only for
an interval that shows one scene, clean throughout.  When a frame of it, or the closing keyframe,
is a cut (the placement's :class:`~bmvseg.schemes.keyframes.Mark`, whatever placed the keyframe)
or the first frame the decoder concealed, the frames before that one get the opening keyframe's
features carried forward alone, and the frames from it on the closing keyframe's carried back
alone, unless the closing keyframe is itself the cut or damaged: then every frame of the
interval gets the forward carry alone (a concealed keyframe never reaches a clean frame).

:class:`Interpolating` is that walk once; a scheme built on it says only how features are
carried (:meth:`Interpolating.carrier`): along block motion (inter-BMV) or dense optical flow.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from typing import Protocol

from bmvseg.models.base import Features
from bmvseg.schemes.base import FrameResult, Mark, Marked, RunContext
from bmvseg.schemes.fusion import ConvFusion, fuse
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.frame import Frame


def scene_break(key: Frame, between: list[Frame], nxt: Frame, cuts: Container[int]
                ) -> int | None:  # fmt: skip
    """Where an interval stops showing its opening keyframe's clean scene: the position in
    ``between + [nxt]`` of its first cut (an index in ``cuts``) or first frame the decoder
    concealed after a clean one; None when there is none (the interval is fused)."""
    before = key
    for pos, fr in enumerate([*between, nxt]):
        if fr.index in cuts or (fr.damaged and not before.damaged):
            return pos
        before = fr
    return None


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

    def carrier(self, key: Frame, nxt: Frame, forward: list[Frame], backward: list[Frame]
                ) -> Carries:  # fmt: skip
        """What carries ``key``'s features to the frames ``forward`` and ``nxt``'s to the
        frames ``backward`` (a fused frame is in both)."""
        raise NotImplementedError

    def results(self, marked: Marked) -> Iterator[FrameResult]:
        pending: list[tuple[Frame, Mark]] = []
        for fr, mark in marked:
            if self.prev is not None and not mark.keyframe:
                self.hold(fr)
                pending.append((fr, mark))
                continue
            yield from self._close_interval(pending, fr, mark)
            pending = []
        if self.prev is not None and pending:  # the video ends inside an interval: close it
            last, mark = pending.pop()
            yield from self._close_interval(pending, last, mark.placed("end"))

    def _close_interval(self, between: list[tuple[Frame, Mark]], nxt: Frame, mark: Mark
                        ) -> Iterator[FrameResult]:  # fmt: skip
        """The keyframe ``nxt`` has arrived: the interval before it, then ``nxt`` itself."""
        run = self.run
        self.hold(nxt)
        feats, res = run.keyframe(nxt, mark)
        if self.prev is not None:
            key, key_feats = self.prev
            frames = [fr for fr, _ in between]
            cuts = {fr.index for fr, m in [*between, (nxt, mark)] if m.cut}
            brk = scene_break(key, frames, nxt, cuts)
            wanted = [fr for fr in frames if run.want(fr.index)]
            if brk is None:
                carrier = self.carrier(key, nxt, wanted, wanted)
                fused = interpolate(carrier, (key.index, key_feats), (nxt.index, feats),
                                    [fr.index for fr in wanted], run.config.fusion, run.conv,
                                    run.timer)  # fmt: skip
                sources = {fr.index: (key.index, nxt.index) for fr in wanted}
            else:  # another scene or damage: one keyframe's features each, never both
                back = brk < len(frames) and not (nxt.index in cuts or nxt.damaged)
                after = {fr.index for fr in frames[brk:]} if back else set()
                fwd = [fr for fr in wanted if fr.index not in after]
                bwd = [fr for fr in wanted if fr.index in after]
                carrier = self.carrier(key, nxt, fwd, bwd)
                with run.timer("warp"):
                    fused = {fr.index: carrier.carry(nxt.index, feats, fr.index)
                             for fr in reversed(bwd)}  # fmt: skip
                    fused.update({fr.index: carrier.carry(key.index, key_feats, fr.index)
                                  for fr in fwd})  # fmt: skip
                sources = {fr.index: (key.index,) for fr in fwd}
                sources.update({fr.index: (nxt.index,) for fr in bwd})
            for fr, m in between:
                yield run.result(fr, fused.get(fr.index), fr.index - key.index, m,
                                 sources.get(fr.index))  # fmt: skip
        self.closed(nxt)
        self.prev = (nxt, feats)
        yield res
