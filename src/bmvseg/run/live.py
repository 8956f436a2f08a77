"""``bmvseg segment`` of a stream that arrives: standard input, a URL, a capture device.

A live input is read once, in order (:mod:`bmvseg.video.live_source`), so what a file run
checks or writes first is not there: no fingerprint (no ``--resume``: the frames are gone once
read), no frame count.  What the run writes instead, while it runs:

- label files as frames are decided, and the overlay as MPEG-TS (``overlay.ts``, playable while
  it is written) or sent to ``overlay_url`` (:mod:`bmvseg.output.live`);
- ``summary.json`` at the start, every :data:`SUMMARY_EVERY_S` seconds (state ``running``) and
  at the end: the stream ended (``complete``, or ``ended early`` after a stall or a failure),
  or the run was stopped (:func:`stop_on_signals`: Ctrl-C, SIGTERM; state ``interrupted``);
  each rewrite is atomic.  A stop ends the reading; the frames already read are labelled
  (inter-BMV closes its last interval, as at a stream's end), so the record is complete;
- each frame's delay from arrival to its label file (``latency_ms``), the backlog
  (``backlog``), and with keep-up the intervals chosen (``keep_up``) and frames dropped.

Keep-up (:mod:`bmvseg.schemes.keep_up`) lengthens the keyframe interval up to the engine's
``max_interval`` (default twice ``-k``) while frames wait; the backlog is bounded by
``capacity`` frames (:func:`backlog_capacity`) and frames beyond it are dropped whole, counted
(``frames_dropped``, ``dropped_frames``) and announced.
"""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from bmvseg.data.classes import ClassSet
from bmvseg.errors import BmvsegError
from bmvseg.output import claim_output_dir
from bmvseg.output.frames import FrameLog, check_storable
from bmvseg.output.live import FAILED, INTERRUPTED, LIVE_OVERLAY, LiveSink, live_state
from bmvseg.output.summary import summarize
from bmvseg.run.background import Worker
from bmvseg.run.build import build_engine
from bmvseg.run.iterate import collected_every, open_video
from bmvseg.run.live_feed import Feed
from bmvseg.run.options import RunOptions
from bmvseg.run.to_dir import stage_ms
from bmvseg.schemes.config import MAX_INTERVAL
from bmvseg.schemes.keep_up import KeepUpSchedule, restarted
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.live_source import is_live
from bmvseg.video.reader import VideoReader

SUMMARY_EVERY_S = 2.0


def live_input(video: object) -> bool:
    """Whether ``video`` arrives rather than lies in a file: ``-``, a URL or a character device
    (a camera).  A named pipe stays refused as a video file is (opening one without a writer
    would block): read it as standard input (``cat FIFO | bmvseg segment - ...``)."""
    if is_live(video):
        return True
    if not isinstance(video, (str, os.PathLike)):
        return False
    try:
        mode = os.stat(video).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISCHR(mode)


@dataclass(frozen=True)
class LiveOptions:
    """What only a live run has (the CLI's ``--timeout``, ``--format``, ``--reconnect``,
    ``--keep-up``, ``--overlay-url``)."""

    timeout: float | None = None  # seconds to wait for the stream (None: the reader's default)
    format: str | None = None  # the demuxer, where FFmpeg cannot guess it (v4l2, mpegts, ...)
    reconnect: int = 0  # times a URL is opened again when its stream ends
    keep_up: bool = False  # lengthen the keyframe interval rather than fall behind
    overlay_url: str | None = None  # send the overlay there instead of overlay.ts

    def __post_init__(self) -> None:
        if isinstance(self.reconnect, bool) or not isinstance(self.reconnect, int) \
                or self.reconnect < 0:  # fmt: skip
            raise BmvsegError(f"reconnect must be a count >= 0, got {self.reconnect!r}")


class Stop:
    """Ends a live run cleanly: the reading stops, what was read is labelled and recorded."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def __call__(self, signum: int | None = None) -> None:
        self.signum = signum
        self.event.set()

    @property
    def name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """SIGINT and SIGTERM stop the run cleanly (exit status ``128 + signal`` is the caller's);
    a second one acts at once, as it would without this."""
    stop = Stop()
    first = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}

    def handle(signum: int, _frame: object) -> None:
        stop(signum)
        for sig, handler in first.items():
            signal.signal(sig, handler)

    old = {sig: signal.signal(sig, handle) for sig in first}
    try:
        yield stop
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def backlog_capacity(max_interval: int) -> int:
    """Frames keep-up lets wait: the longest interval twice over (one being segmented, one
    arriving), at least 16."""
    return max(16, 2 * max_interval)


def segment_live_to_dir(
    video: str | os.PathLike | BinaryIO,
    output: str | os.PathLike,
    options: RunOptions,
    live: LiveOptions = LiveOptions(),
    *,
    overlay: bool = True,
    overwrite: bool = False,
    stop: Stop | None = None,
    notice: Callable[[str], None] = lambda text: None,
    progress: Callable[[int, str], None] = lambda done, status: None,
    command: str | None = None,
    summary_every: float = SUMMARY_EVERY_S,
) -> dict:
    """Segment the live input ``video`` into ``output`` until its stream ends or ``stop``;
    returns the summary also written as summary.json (see the module docstring).

    ``progress(frames done, status)`` is called once per frame, ``status`` being the delay
    line (p50/p95/max) and the keyframe interval of keep-up.
    """
    stop = stop or Stop()
    cfg = options.engine
    max_interval = cfg.max_interval or min(2 * cfg.interval, MAX_INTERVAL)
    if live.keep_up and cfg.keyframes != "fixed":
        raise BmvsegError("--keep-up places keyframes itself: use it with --keyframes fixed")
    reopen = None
    if isinstance(video, str) and is_live(video) and video != "-":
        def reopen() -> VideoReader:
            return _open(video, options, live)
    # The model first: a stream opened before it is ready would queue up meanwhile.
    engine = build_engine(options, timer=StageTimer())
    check_storable(engine.model.num_classes)
    reader = _open(video, options, live)
    try:
        for text in reader.notices:
            notice(text)
        identity = {"video": reader.name, "live": True, **options.identity()}
        about = {"video": reader.name, "overlay": _overlay_place(overlay, live)}
        inputs = [video] if isinstance(video, (str, os.PathLike)) and not is_live(video) else []
        out = claim_output_dir(output, "segment", identity, inputs=inputs, overwrite=overwrite)
        out.write_json("run.json", {**about, **identity})
    except BaseException:
        reader.close()
        raise
    feed = Feed(reader, keep_up=live.keep_up, capacity=backlog_capacity(max_interval),
                reopen=reopen, reconnect=live.reconnect, stop=stop.event,
                notice=notice)  # fmt: skip
    keep = None
    if live.keep_up and cfg.traits.uses_interval and cfg.interval < max_interval:
        keep = KeepUpSchedule(cfg.interval, max_interval, feed.backlog, lambda: feed.dropped)
    run = _LiveRun(feed, engine, keep, about, identity, str(options.device),
                   command or "bmvseg.segment_live_to_dir (Python)")  # fmt: skip
    try:
        sink = LiveSink(out, overlay=overlay and live.overlay_url is None,
                        overlay_url=live.overlay_url, fps=reader.fps,
                        classes=ClassSet.of(engine.model),
                        arrived=lambda i: feed.arrivals.pop(i, None))  # fmt: skip
    except BaseException:
        feed.close()
        raise
    return run.go(sink, stop, notice, progress, summary_every)


def _open(video: str | os.PathLike | BinaryIO, options: RunOptions, live: LiveOptions
          ) -> VideoReader:  # fmt: skip
    return open_video(video, options, live=True, timeout=live.timeout, format=live.format)


def _overlay_place(overlay: bool, live: LiveOptions) -> str | None:
    if live.overlay_url is not None:
        return live.overlay_url
    return LIVE_OVERLAY if overlay else None


class _LiveRun:
    """The frame loop of a live run and the summaries it writes on the way."""

    def __init__(self, feed: Feed, engine, keep: KeepUpSchedule | None, about: dict,
                 identity: dict, device: str, command: str) -> None:  # fmt: skip
        self.feed, self.engine, self.keep = feed, engine, keep
        self.about, self.identity, self.device, self.command = about, identity, device, command
        self.log = FrameLog(engine.model)
        self.writer: Worker | None = None
        self.t0 = time.perf_counter()
        self.dropped_told = 0
        self.due = 0.0

    def rewrite(self, sink: LiveSink, stop: Stop, every: float) -> None:
        """summary.json again if ``every`` seconds have passed (also while the stream is
        silent: the feed calls this while it waits)."""
        if time.perf_counter() >= self.due:
            sink.write_summary(self.summary(sink, stop, running=True))
            self.due = time.perf_counter() + every

    def go(self, sink: LiveSink, stop: Stop, notice: Callable[[str], None],
           progress: Callable[[int, str], None], every: float) -> dict:  # fmt: skip
        feed, engine, log = self.feed, self.engine, self.log
        self.writer = writer = Worker(sink.write, name="writer")
        self.rewrite(sink, stop, every)
        feed.idle = lambda: self.rewrite(sink, stop, every)
        error: BaseException | None = None
        try:
            with collected_every() as tick:
                for reason, frames in feed.segments():
                    schedule = restarted(self.keep or engine.cfg.schedule(), reason)
                    for res in engine.run(frames, schedule=schedule):
                        log.add(res)
                        writer.submit(res)
                        tick()
                        progress(log.frames, self.status(sink))
                        self.tell_drops(notice)
                        self.rewrite(sink, stop, every)
            writer.close()
            sink.close()
        except BaseException as exc:  # recorded below, then raised
            error = exc
        finally:
            feed.close()
            writer.stop()
            sink.discard()
        if error is not None:
            self.failed(sink, stop, error)
            if isinstance(error, OSError):
                raise BmvsegError(f"cannot write to {sink.out.path}: "
                                  f"{error.strerror or error}") from error  # fmt: skip
            raise error
        self.tell_drops(notice)
        if feed.failure is None and feed.reader.truncation_reason:
            notice(f"{feed.name}: the stream ended: {feed.reader.truncation_reason}")
        summary = self.summary(sink, stop, running=False)
        sink.write_summary(summary)
        return summary

    def failed(self, sink: LiveSink, stop: Stop, error: BaseException) -> None:
        """The run failed (or a second Ctrl-C cut it short): summary.json says so, with
        ``"complete": false``, rather than ``running`` for ever."""
        try:
            summary = self.summary(sink, stop, running=True)
            summary["state"] = INTERRUPTED if isinstance(error, KeyboardInterrupt) else FAILED
            summary["error"] = str(error) or type(error).__name__
            sink.write_summary(summary)
        except Exception:  # noqa: BLE001, S110 - failing already: that error is reported
            pass

    def status(self, sink: LiveSink) -> str:
        line = sink.latency.line()
        return line if self.keep is None else f"{line}; interval {self.keep.current}"

    def tell_drops(self, notice: Callable[[str], None]) -> None:
        """One notice each time frames were dropped since the last (never silently)."""
        dropped = self.feed.dropped
        if dropped > self.dropped_told:
            interval = f"{self.keep.max_interval}" if self.keep else "1 (no interval)"
            notice(f"{self.feed.name}: falling behind the stream even at keyframe interval "
                   f"{interval}: {dropped - self.dropped_told} frame(s) dropped "
                   f"({dropped} in all)")  # fmt: skip
            self.dropped_told = dropped

    def summary(self, sink: LiveSink, stop: Stop, *, running: bool) -> dict:
        feed, writer = self.feed, self.writer
        wall = time.perf_counter() - self.t0
        part = self.log.facts(feed, stage_ms(self.engine, writer, self.log.frames), wall)
        if running:
            part["frames"] = sink.written
        keep = self.keep
        summary = summarize(
            [part], about=self.about, identity=self.identity, wall_s=wall,
            rotation=feed.rotation, device=self.device, command=self.command,
            live=True,
            frames_received=feed.received,
            frames_dropped=feed.dropped,
            dropped_frames=[list(r) for r in feed.dropped_ranges],
            latency_ms=sink.latency.summary(),
            backlog={"max": feed.max_backlog, "capacity": feed.capacity},
            keep_up=None if keep is None else {
                "interval": keep.interval, "max_interval": keep.max_interval,
                "current": keep.current, "changes": list(keep.changes)},
            reconnects=feed.reconnects,
            stopped_by=stop.name if stop.event.is_set() else None,
        )  # fmt: skip
        summary["complete"] = not running
        summary["state"] = live_state(summary, running=running, interrupted=stop.event.is_set())
        return summary
