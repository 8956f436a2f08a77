"""A live input read in a thread of its own, as it arrives: the frames, when each arrived, and
the backlog between the stream and the engine.

A stream does not wait for the engine, so the reader must not either: the thread stamps each
frame with the time it was read (its *arrival*, where latency is measured from) and queues it.
Without keep-up the queue holds :data:`DEPTH` frames and the thread then waits, as decoding
ahead of a file does (the stream's own buffers hold the rest, and delays grow when the engine
is slower than the stream).  With keep-up the queue holds ``capacity`` frames and the thread
never waits: the queue length is the backlog the keep-up schedule reads
(:mod:`bmvseg.schemes.keep_up`), and a frame that arrives to a full queue is dropped whole,
counted and listed, never silently, as are the next ones until half the queue is free.

Frames come out in runs without gaps (:meth:`Feed.segments`): after dropped frames, or after
``reconnect`` opened a URL again when its stream ended, the next frame starts a new run (its
motion is not relative to the frame before it), whose first keyframe says why.  Indices and
times go on across a reconnect, so labels never overwrite earlier ones.

The feed also stands for the reader in a run's record (:meth:`bmvseg.output.frames.FrameLog.facts`
reads the same attributes): damage lists of every connection, truncation of the last.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from bmvseg.errors import BmvsegError
from bmvseg.video.frame import Frame
from bmvseg.video.reader import VideoReader

DEPTH = 8  # frames queued ahead of the engine without keep-up (as decoding ahead of a file)
RETRY_PAUSE_S = 1.0  # between reconnect attempts that failed at once (nothing listening)


class _Gap:
    """In the queue: the frames after it do not follow the ones before it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


_END = object()


class Feed:
    """``reader``'s frames from a background thread (see the module docstring).

    ``reopen`` opens the input again (None: it cannot be, e.g. standard input); ``reconnect``
    is how many times it may.  ``stop`` ends the reading at the next frame (Ctrl-C, SIGTERM):
    what is queued still comes out.
    """

    def __init__(
        self,
        reader: VideoReader,
        *,
        keep_up: bool = False,
        capacity: int = DEPTH,
        reopen: Callable[[], VideoReader] | None = None,
        reconnect: int = 0,
        stop: threading.Event | None = None,
        notice: Callable[[str], None] = lambda text: None,
    ) -> None:
        self.reader = reader
        self.keep_up, self.capacity = keep_up, (capacity if keep_up else DEPTH)
        self.reopen, self.reconnects_left = reopen, reconnect if reopen is not None else 0
        self.stop = stop or threading.Event()
        self._closed = threading.Event()
        self.notice = notice
        self.idle: Callable[[], None] = lambda: None  # called while the consumer waits
        self.arrivals: dict[int, float] = {}  # frame index -> time.monotonic() it was read
        self.received = 0
        self.dropped = 0
        self.dropped_ranges: list[list[int]] = []  # [first, last] of each run of dropped frames
        self.reconnects = 0
        self.max_backlog = 0
        self.own_notices: list[str] = []
        self.failure: str | None = None  # why the stream could not be read on, if it failed
        self._queue: deque = deque()
        self._queued = 0  # frames (not gaps) in the queue
        self._cond = threading.Condition()
        self._gap: str | None = None
        self._dropping = False
        self._ended = False
        self._error: BaseException | None = None
        self._offset = 0  # index offset of the current connection
        self._damaged: list[int] = []
        self._concealed: list[int] = []
        self._thread = threading.Thread(target=self._read, name="bmvseg-live", daemon=True)
        self._thread.start()

    # -- the reading thread --------------------------------------------------------------------
    def _read(self) -> None:
        try:
            reader, shift, last_time = self.reader, 0.0, None
            while True:
                first = True
                for fr in reader.frames():
                    arrived = time.monotonic()
                    if self._halted():
                        break
                    if first and self._offset:  # times go on after the last connection's
                        step = 1.0 / reader.fps if reader.fps else 0.0
                        shift = (last_time or 0.0) + step - fr.time
                        self._gap = "reconnect"
                    first = False
                    fr.index += self._offset
                    fr.time += shift
                    last_time = fr.time
                    self._put(fr, arrived)
                self._keep_damage(reader)
                if self._halted():
                    return
                reader = self._reconnect(reader)
                if reader is None:
                    return
        except BmvsegError as exc:  # a stream that goes wrong ends the run, with what arrived
            self.failure = str(exc)
            self._say(f"the stream ended: {exc}")
        except BaseException as exc:  # a bug: handed to the consumer, raised there
            self._error = exc
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _put(self, fr: Frame, arrived: float) -> None:
        with self._cond:
            # Even the longest interval lags: drop until half the queue is free (each gap costs
            # a keyframe when the frames resume, so gaps are few and whole).
            self._dropping = self.keep_up and (
                self._queued >= self.capacity
                or (self._dropping and self._queued > self.capacity // 2)
            )
            if self._dropping:
                self.received += 1
                self._drop(fr.index)
                return
            while self._queued >= self.capacity and not self._halted():
                self._cond.wait(0.1)
            if self._halted():  # read after the stop: the consumer may have ended already
                return
            self.received += 1
            if self._gap is not None:
                self._queue.append(_Gap(self._gap))
                self._gap = None
            self.arrivals[fr.index] = arrived
            self._queue.append(fr)
            self._queued += 1
            self.max_backlog = max(self.max_backlog, self._queued)
            self._cond.notify_all()

    def _drop(self, index: int) -> None:
        self.dropped += 1
        if self.dropped_ranges and self.dropped_ranges[-1][1] == index - 1:
            self.dropped_ranges[-1][1] = index
        else:
            self.dropped_ranges.append([index, index])
        self._gap = "after drop"

    def _keep_damage(self, reader: VideoReader) -> None:
        self._damaged += [i + self._offset for i in reader.damaged_frames]
        self._concealed += [i + self._offset for i in reader.concealed_frames]

    def _reconnect(self, ended: VideoReader) -> VideoReader | None:
        """The input opened again, or None when it may not be or every attempt failed."""
        why = ended.truncation_reason or "the sender closed it"
        while self.reconnects_left > 0 and not self._halted():
            self.reconnects_left -= 1
            self._say(f"{ended.name}: the stream ended ({why}); reconnecting "
                      f"({self.reconnects_left} more attempts after this one)")  # fmt: skip
            t0 = time.monotonic()
            try:
                reader = self.reopen()
            except BmvsegError as exc:
                why = str(exc)
                self._closed.wait(max(0.0, RETRY_PAUSE_S - (time.monotonic() - t0)))
                continue
            self.reconnects += 1
            self._offset = self.received
            self.reader = reader
            return reader
        return None

    def _halted(self) -> bool:
        return self.stop.is_set() or self._closed.is_set()

    def _say(self, text: str) -> None:
        self.own_notices.append(text)
        self.notice(text)

    # -- the consumer --------------------------------------------------------------------------
    def backlog(self) -> int:
        """Frames that have arrived and wait for the engine."""
        return self._queued

    def _next(self, pop: bool) -> object:
        while True:
            with self._cond:
                if self._queue:
                    item = self._queue[0]
                    if pop:
                        self._queue.popleft()
                        if isinstance(item, Frame):
                            self._queued -= 1
                        self._cond.notify_all()
                    return item
                if self._ended or self._halted():
                    if self._error is not None:
                        raise self._error
                    return _END
                self._cond.wait(0.1)
            self.idle()

    def segments(self) -> Iterator[tuple[str, Iterator[Frame]]]:
        """Runs of frames without gaps, each with why it starts (``"start"``, ``"after
        drop"``, ``"reconnect"``); read each run to its end before the next."""
        reason = "start"
        while True:
            item = self._next(pop=False)
            if item is _END:
                return
            if isinstance(item, _Gap):
                self._next(pop=True)
                reason = item.reason
                continue
            yield reason, self._run()

    def _run(self) -> Iterator[Frame]:
        while True:
            item = self._next(pop=False)
            if not isinstance(item, Frame):
                return
            self._next(pop=True)
            yield item

    def close(self, wait: float = 1.0) -> None:
        """Stop reading; the thread ends after its current read (a stalled sender may hold it
        until the reader's time-out: it is not waited for longer than ``wait`` seconds)."""
        self._closed.set()
        self._thread.join(wait)

    # -- the reader's facts, for the run's record ----------------------------------------------
    @property
    def truncated(self) -> bool:
        return self.reader.truncated or self.failure is not None

    @property
    def damaged_frames(self) -> list[int]:
        return self._damaged + ([] if self._ended else self._current(self.reader.damaged_frames))

    @property
    def concealed_frames(self) -> list[int]:
        return self._concealed + (
            [] if self._ended else self._current(self.reader.concealed_frames)
        )

    def _current(self, indices: list[int]) -> list[int]:
        return [i + self._offset for i in indices]

    @property
    def notices(self) -> list[str]:
        return [*self.reader.notices, *self.own_notices]

    def __getattr__(self, name: str):
        """The stream's facts (size, rate, stream, motion source) are the reader's."""
        if name in ("stream_index", "motion_source", "motion_reason", "width", "height", "fps",
                    "name", "rotation", "damage_notice"):  # fmt: skip
            return getattr(self.reader, name)
        raise AttributeError(name)
