"""Keep-up placement: the keyframe interval of a live run follows the run's backlog.

A stream that arrives does not wait: when the pipeline is slower than the stream's own pace,
frames queue up and every frame's delay grows without bound.  Keyframes are the expensive frames
(the feature network), so a longer interval is the cheap way to catch up.  At every keyframe
the schedule looks at the backlog (frames that have arrived and wait for the engine, counted by
the caller: :class:`bmvseg.run.live_feed.Feed`) and picks the interval up to the next one:

- **behind** (more frames waiting than the current interval, and the backlog grew, or frames
  were dropped, over each of the last :data:`GROWING` intervals): the interval doubles, up to
  ``max_interval``.  A backlog that does not keep growing is being kept up with at the current
  interval: a burst (FFmpeg's stream analysis hands over its first half second of frames at
  once, while the first keyframe warms the model up; a network hiccup) is no reason to
  lengthen;
- **slack** (at most :data:`SLACK` frames waiting): it moves halfway back towards ``-k``
  (at least one frame shorter), so it returns to ``-k`` once the stream is easy again;
- otherwise it stays.

A keyframe that closes an interval other than ``-k`` has reason ``"keep-up"`` (one at ``-k``:
``"interval"``, as fixed placement), and every change is listed in :attr:`changes` (frame,
new interval, backlog seen).  Placement depends on timing, so nothing here is stable for
ranges: a live run is one pass from its first frame.  Frames the caller had to drop (even the
longest interval could not keep up) are its to count; each run of frames after a gap is marked
again from a keyframe (see :func:`restarted`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bmvseg.errors import BmvsegError
from bmvseg.schemes.keyframes import (
    CUT_VALID,
    IFRAME_VALID,
    KeyframeSchedule,
    Mark,
    Marked,
    frame_is_cut,
)
from bmvseg.video.frame import Frame

SLACK = 1  # frames waiting that still count as keeping up (the one being decoded)
GROWING = 2  # intervals in a row over which the backlog must grow to count as falling behind


class KeepUpSchedule:
    """Keyframes every ``current`` frames, ``current`` in ``interval..max_interval`` chosen from
    ``backlog()`` at each keyframe (see the module docstring)."""

    lookahead = 0

    def __init__(self, interval: int, max_interval: int, backlog: Callable[[], int],
                 dropped: Callable[[], int] = lambda: 0) -> None:  # fmt: skip
        if not 1 <= interval <= max_interval:
            raise BmvsegError(
                f"keep-up needs 1 <= keyframe interval <= max interval, got {interval} and "
                f"{max_interval}"
            )
        self.interval, self.max_interval, self.current = interval, max_interval, interval
        self.backlog, self.dropped = backlog, dropped
        self.changes: list[dict[str, int]] = []
        self._last: tuple[int, int] | None = None  # (backlog, dropped) at the last keyframe
        self._grew = 0  # intervals in a row over which it grew

    def stable(self, index: int) -> bool:
        return True  # one pass from the stream's first frame (see the module docstring)

    def mark(self, frames: Iterable[Frame]) -> Marked:
        """Each frame with its :class:`~bmvseg.schemes.keyframes.Mark` (cuts found as fixed
        placement finds them); the first frame of each call is a keyframe, and the interval
        carries over from the previous call."""
        last: int | None = None
        for fr in frames:
            mark = Mark(cut=fr.index > 0 and frame_is_cut(fr, CUT_VALID, IFRAME_VALID))
            if last is None:
                mark = mark.placed("start")
            elif fr.index - last >= self.current:
                mark = mark.placed("interval" if self.current == self.interval else "keep-up")
            if mark.keyframe:
                last = fr.index
                self._adjust(fr.index)
            yield fr, mark

    def _adjust(self, index: int) -> None:
        waiting, dropped = self.backlog(), self.dropped()
        before, self._last = self._last, (waiting, dropped)
        now = self.current
        grew = before is not None and (waiting > before[0] or dropped > before[1])
        self._grew = self._grew + 1 if grew else 0
        if waiting > now and self._grew >= GROWING:
            new = min(self.max_interval, 2 * now)
        elif waiting <= SLACK:
            new = max(self.interval, now - max(1, (now - self.interval) // 2))
        else:
            new = now
        if new != now:
            self.current = new
            self.changes.append({"index": index, "interval": new, "backlog": waiting})


def restarted(schedule: KeyframeSchedule, reason: str) -> KeyframeSchedule:
    """``schedule`` for a run of frames that starts after a gap: its first keyframe says why
    (``"after drop"``, ``"reconnect"``), and it may start anywhere."""
    return _Restarted(schedule, reason)


class _Restarted:
    def __init__(self, schedule: KeyframeSchedule, reason: str) -> None:
        self.inner, self.reason, self.lookahead = schedule, reason, schedule.lookahead

    def stable(self, index: int) -> bool:
        return True

    def mark(self, frames: Iterable[Frame]) -> Marked:
        first = True
        for fr, mark in self.inner.mark(frames):
            if first:  # the gap's reason first, then whatever else it is (a cut)
                first = False
                mark = Mark(cut=mark.cut).placed(self.reason)
            yield fr, mark
