"""Keyframe placement: which frames run the feature network, and why (the one place that says so).

A schedule's :meth:`~KeyframeSchedule.mark` takes the decoded frames in order and yields each
with its :class:`Mark`: every reason it is a keyframe (none: it is not one) and whether it is a
cut.  It may read up to ``lookahead`` frames ahead before yielding a frame, so memory stays
bounded and streaming still works.  The first frame it sees is always a keyframe (``"start"``).
Closing a video that ends inside an interval (inter-BMV's ``"end"`` keyframe) is the engine's
job; the adaptive schedule keeps the budget for it.  Because of the look-ahead, the frames
given to ``mark`` for a range must go on past the range's end (to the video's end, read
lazily), or the range's last decisions would see an end that is not there.

**Budget.**  With interval ``k`` over ``T`` frames a run has at most ``ceil(T / k) + 1``
keyframes, the engine's closing one included: what fixed placement uses.  The adaptive schedule
keeps the budget as *credit*, counted in frames: each frame after a keyframe earns 1, a keyframe
costs ``k``, and after the first frame the credit is ``k`` (one keyframe in hand).  Credit is
never negative, so after ``i + 1`` frames at most ``ceil((i + 1) / k) + 1`` keyframes have been
placed, and the end of the video, when it is within the look-ahead, is kept payable.

**Cuts, whatever the placement.**  Every frame after the first is tested for a hard cut
(:func:`is_cut`: its motion field is mostly invalid, see rule 3 below), by both placements.  A
keyframe that is also a cut gets ``"cut"`` among its reasons, whatever placed it (an anchor, the
max interval, the engine's closing ``"end"``...), and a cut that is not a keyframe (fixed
placement never adds one; adaptive placement when the budget refuses) is still marked, so the
schemes that fuse two keyframes never fuse across it (:mod:`bmvseg.schemes.interval`).

**Fixed** (:class:`FixedSchedule`): frame ``index % k == phase`` (``"interval"``) and the first
frame (``"start"``), the paper's placement.

**Adaptive** (:class:`AdaptiveSchedule`), from the compressed stream alone (no network), in this
order of priority for each frame:

1. ``"anchor"``: every frame whose index is a multiple of ``anchor`` (default ``10 k``) is a
   keyframe and resets the schedule to the state it starts in (credit ``k``, nothing
   accumulated).  Anchors are the **placement-stable points**: a run started at an anchor places
   exactly the later keyframes a run from frame 0 places, so frame ranges and distributed chunks
   must start at an anchor (:meth:`AdaptiveSchedule.stable`); placement between anchors depends
   on the frames since the last anchor.  The schedule keeps ``2 k`` of credit for each anchor
   (the anchor's cost and the credit it hands on), so the reset never creates budget.
2. ``"max-interval"``: no interval is longer than ``max_interval`` (default ``2 k``).
3. ``"cut"``: a hard cut, a frame whose motion field is mostly invalid (valid share below
   ``cut_valid``, default 0.5; below ``iframe_valid``, 0.8, on one of the stream's own
   I-frames, where the encoder's scene detection already agrees): the encoder found no match
   for most blocks in the previous frame, so it shows a new scene.  (A cut coded as an I-frame
   by x264's defaults kept 46% valid cells in our re-encoded motion, one coded as a P-frame 2%.)
   Warped features from before it would be another scene's, so its first frame is a keyframe
   and no interval spans it, as long as the budget allows.  In the property tests every cut at
   least ``2 k`` frames from the previous one got its keyframe unless it fell within ``k``
   frames before an anchor or the end of the video, whose credit is already promised; denser
   cuts (a slide show, noise) are refused once the credit is spent, and an interval spans them.
4. ``"iframe"``: one of the stream's own I-frames once the accumulated change (below) reaches
   ``iframe_change`` (0.5).  Encoders put I-frames where content changes but also at fixed GOP
   boundaries, so an I-frame only brings forward a keyframe that the change measure already
   half calls for.  (With re-encoded motion the motion fields are the re-encoder's, but
   ``pict_type`` is still the input stream's.)
5. ``"change"``: the change accumulated since the last keyframe reaches 1.  Each frame adds
   ``mean |mv| / displacement`` (valid cells; ``displacement`` 16 px, one cell: the further
   content has moved, the more the chained block warps blur and the more content has left the
   frame) plus ``intra share / intra`` (the invalid cells' share; ``intra`` 0.5: intra-coded
   cells are content the previous frame does not have, which warping cannot produce).
6. ``"spare"`` (``spend=True``, the default): once an interval is ``k`` frames long, a keyframe
   as soon as the credit allows one (below), so the budget is used, evenly: on a static clip
   keyframes fall every ``k`` frames, like fixed placement.  With ``spend=False`` spare credit
   is kept for changes and cuts until the next anchor, and a static clip gets a keyframe every
   ``max_interval`` frames.

Optional keyframes (3-6) are placed only if the credit left still pays for every mandatory one
up to the next anchor (or the end of the video, when it is within the look-ahead), with the
``max_interval`` keyframes that need, and (4-6) for the cuts visible in the look-ahead, which
also defer them when a cut is at most ``k`` frames away.  A cut may leave the intervals after
it up to ``max_interval`` long; a change, I-frame or spare keyframe closing an interval of
``g`` frames must leave enough credit to keep every later interval up to the next anchor
within ``max(k, g)`` frames.  So early keyframes spend only saved credit and never starve later
intervals, and when a cut ahead must be paid for, the intervals before it all grow a little
rather than one of them doubling (the frames farthest from a keyframe are what the minimum
accuracy measures).  Whether those later keyframes are then placed is up to the rules above.

The look-ahead is ``max_interval`` frames. With ``max_interval < 2 k - 1`` a cut can spend
credit that a closing keyframe later needs, so the engine's ``"end"`` may exceed the budget by
one; the schedule's own keyframes never do. A run started at a frame that is not an anchor
starts with fresh credit and may place other keyframes than a whole run (and one more than the
budget) before its first anchor.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from bmvseg.errors import BmvsegError
from bmvseg.video.frame import Frame

# "adaptive" spends its budget (spare keyframes evenly); "adaptive-lean" saves what the stream
# does not ask for (a static camera gets a keyframe every max_interval frames).
PLACEMENTS = ("fixed", "adaptive", "adaptive-lean")

# The cut test's thresholds (rule 3 of the module docstring): the share of valid motion cells
# below which a frame is a cut, on a P/B-frame and on one of the stream's own I-frames.
CUT_VALID, IFRAME_VALID = 0.5, 0.8


@dataclass(frozen=True)
class Mark:
    """What placement says of one frame: every reason it is a keyframe, the first the one that
    placed it (empty: not a keyframe), and whether it opens another scene (a cut)."""

    reasons: tuple[str, ...] = ()
    cut: bool = False

    @property
    def keyframe(self) -> bool:
        return bool(self.reasons)

    def placed(self, reason: str) -> Mark:
        """This frame also a keyframe for ``reason`` (after the reasons it has), and ``"cut"``
        among its reasons if it is one, whatever placed it."""
        cut = ("cut",) if self.cut else ()
        return replace(self, reasons=tuple(dict.fromkeys((*self.reasons, reason, *cut))))


NOT_KEYFRAME = Mark()
Marked = Iterator[tuple[Frame, Mark]]


class KeyframeSchedule(Protocol):
    """Keyframe placement for one run (see the module docstring)."""

    lookahead: int

    def mark(self, frames: Iterable[Frame]) -> Marked:
        """Each frame, in order, with its :class:`Mark`."""
        ...

    def stable(self, index: int) -> bool:
        """Whether a run started at frame ``index`` places the same later keyframes."""
        ...


def _check_interval(interval: int) -> None:
    if interval < 1:
        raise BmvsegError(f"keyframe interval must be >= 1, got {interval}")


def _check_cut(cut_valid: float, iframe_valid: float) -> None:
    if not (0 <= cut_valid <= 1 and 0 <= iframe_valid <= 1):
        raise BmvsegError(
            f"cut thresholds must be shares in 0..1, got {cut_valid} and {iframe_valid}"
        )


class FixedSchedule:
    """The paper's placement: frames ``index % interval == phase``, and the first frame; cuts
    are marked (and named among a keyframe's reasons) but never add a keyframe.

    ``cut_valid=iframe_valid=0`` turns the cut test off (the placement before it existed).
    """

    def __init__(
        self,
        interval: int,
        phase: int = 0,
        *,
        cut_valid: float = CUT_VALID,
        iframe_valid: float = IFRAME_VALID,
    ) -> None:
        _check_interval(interval)
        if not 0 <= phase < interval:
            raise BmvsegError(f"keyframe phase must be in 0..{interval - 1}, got {phase}")
        _check_cut(cut_valid, iframe_valid)
        self.interval, self.phase, self.lookahead = interval, phase, 0
        self.cut_valid, self.iframe_valid = cut_valid, iframe_valid

    def stable(self, index: int) -> bool:
        return index == 0 or index % self.interval == self.phase

    def mark(self, frames: Iterable[Frame]) -> Marked:
        first = True
        for fr in frames:
            mark = Mark(cut=fr.index > 0 and frame_is_cut(fr, self.cut_valid, self.iframe_valid))
            if first:
                first = False
                mark = mark.placed("start")
            elif fr.index % self.interval == self.phase:
                mark = mark.placed("interval")
            yield fr, mark


@dataclass(frozen=True)
class Signal:
    """What the compressed stream says about one frame (relative to the previous one)."""

    valid: float  # share of cells with a motion vector
    displacement: float  # mean |mv| over the valid cells, pixels (0 when none is valid)
    iframe: bool  # the input stream coded it as an I-frame


def is_cut(sig: Signal, cut_valid: float = CUT_VALID, iframe_valid: float = IFRAME_VALID) -> bool:
    """The cut test (rule 3 of the module docstring), the one both placements apply."""
    return sig.valid < (iframe_valid if sig.iframe else cut_valid)


def frame_is_cut(frame: Frame, cut_valid: float, iframe_valid: float) -> bool:
    """Whether ``frame`` is a cut (a frame without a motion field cannot be said to be one)."""
    return frame.motion is not None and is_cut(signal(frame), cut_valid, iframe_valid)


def signal(frame: Frame) -> Signal:
    """The placement signals of ``frame`` (no network, only its motion field and picture type)."""
    valid = frame.motion.valid.ravel()
    count = int(np.count_nonzero(valid))
    mv = frame.motion.mv.reshape(-1, 2)
    length = np.sqrt(np.einsum("ij,ij->i", mv, mv))  # 3x faster than np.hypot on a 720p grid
    disp = float(length[valid].sum() / count) if count else 0.0
    return Signal(count / valid.size if valid.size else 0.0, disp, frame.pict_type == "I")


class AdaptiveSchedule:
    """Codec-aware placement under fixed placement's budget (rule: the module docstring)."""

    def __init__(
        self,
        interval: int,
        max_interval: int | None = None,
        *,
        anchor: int | None = None,
        spend: bool = True,
        cut_valid: float = CUT_VALID,
        iframe_valid: float = IFRAME_VALID,
        displacement: float = 16.0,
        intra: float = 0.5,
        iframe_change: float = 0.5,
    ) -> None:
        _check_interval(interval)
        k = interval
        m = 2 * k if max_interval is None else max_interval
        if m < k:
            raise BmvsegError(f"max interval must be >= the keyframe interval {k}, got {m}")
        p = 10 * k if anchor is None else anchor
        if p < k or p % k:
            raise BmvsegError(f"anchor period must be a positive multiple of {k}, got {p}")
        _check_cut(cut_valid, iframe_valid)
        if displacement <= 0 or intra <= 0:
            raise BmvsegError(
                f"change scales must be positive, got displacement={displacement} intra={intra}"
            )
        self.interval, self.max_interval, self.anchor, self.spend = k, m, p, spend
        self.cut_valid, self.displacement, self.intra = cut_valid, displacement, intra
        self.iframe_valid, self.iframe_change = iframe_valid, iframe_change
        self.lookahead = m

    def stable(self, index: int) -> bool:
        return index % self.anchor == 0

    def change(self, sig: Signal) -> float:
        """One frame's contribution to the accumulated change (1 calls for a keyframe)."""
        return sig.displacement / self.displacement + (1.0 - sig.valid) / self.intra

    def is_cut(self, sig: Signal) -> bool:
        return is_cut(sig, self.cut_valid, self.iframe_valid)

    def _payable(
        self, at: int, credit: int, musts: list[int], target: int | None, need: int, spacing: int
    ) -> bool:
        """Whether a keyframe at ``at`` leaving ``credit`` still pays ``musts`` and ``target``.

        Between two of them the fewest keyframes that keep intervals within ``spacing`` are
        placed as late as possible; each of those is payable because ``spacing >= k``.
        ``target`` (the next anchor or the visible end) needs ``need`` credit before its cost.
        """
        k, m = self.interval, spacing
        last = at
        for pos in [*musts, *([] if target is None else [target])]:
            gap = pos - last
            credit += gap - (-(-gap // m) - 1) * k
            if credit < (need if pos == target else k):
                return False
            credit -= k
            last = pos
        return True

    def mark(self, frames: Iterable[Frame]) -> Marked:
        k = self.interval
        source = iter(frames)
        window: deque[tuple[Frame, Signal]] = deque()
        cuts: deque[int] = deque()  # indices of the cuts in the window
        ended = False
        last, credit, acc = 0, 0, 0.0
        first = True
        while True:
            while not ended and len(window) <= self.lookahead:
                fr = next(source, None)
                if fr is None:
                    ended = True
                else:
                    window.append((fr, signal(fr)))
                    if self.is_cut(window[-1][1]):
                        cuts.append(fr.index)
            if not window:
                return
            fr, sig = window.popleft()
            i = fr.index
            if cuts and cuts[0] == i:
                cuts.popleft()
            if first:
                first = False
                reason: str | None = "start"
            else:
                credit += 1
                acc += self.change(sig)
                end = (window[-1][0].index if window else i) if ended else None
                reason = self._decide(i, sig, last, credit, acc, cuts, end)
            mark = Mark(cut=i > 0 and self.is_cut(sig))
            if reason is not None:
                credit = k if reason in ("start", "anchor") else credit - k
                last, acc = i, 0.0
                mark = mark.placed(reason)
            yield fr, mark

    def _decide(
        self,
        i: int,
        sig: Signal,
        last: int,
        credit: int,
        acc: float,
        cuts_ahead: Iterable[int],
        end: int | None,
    ) -> str | None:
        """Why frame ``i`` is a keyframe, or None (``end``: the last frame, once in view)."""
        k = self.interval
        if self.stable(i):
            return "anchor"
        if i - last >= self.max_interval:
            return "max-interval"
        if credit < k:
            return None
        anchor = (i // self.anchor + 1) * self.anchor
        target: int | None = anchor
        need = 2 * k
        if end is not None and end <= anchor:  # an anchor that ends the video hands nothing on
            target, need = (None, 0) if end == i else (end, k)
        if self.is_cut(sig):
            return (
                "cut" if self._payable(i, credit - k, [], target, need, self.max_interval) else None
            )
        cuts = [c for c in cuts_ahead if c < anchor]
        if cuts and cuts[0] - i <= k:
            return None
        cuts = [c for c in cuts if target is None or c < target]
        gap = i - last
        if sig.iframe and acc >= self.iframe_change:
            reason: str | None = "iframe"
        elif acc >= 1.0:
            reason = "change"
        elif self.spend and gap >= k:
            reason = "spare"
        else:
            return None
        spacing = max(k, gap)  # no later interval need be longer than this one
        return reason if self._payable(i, credit - k, cuts, target, need, spacing) else None


def make_schedule(
    kind: str, interval: int, phase: int = 0, max_interval: int | None = None
) -> KeyframeSchedule:
    """The schedule for ``--keyframes kind``: one of :data:`PLACEMENTS`."""
    if kind == "fixed":
        return FixedSchedule(interval, phase)
    if kind in ("adaptive", "adaptive-lean"):
        if phase:
            raise BmvsegError(f"keyframe phase applies to fixed placement only, got {phase}")
        return AdaptiveSchedule(interval, max_interval, spend=kind == "adaptive")
    raise BmvsegError(f"unknown keyframe placement {kind!r}; choose from {', '.join(PLACEMENTS)}")
