"""What a live run writes while it runs: label files, an overlay that plays while it is written,
every frame's delay, and a summary rewritten every few seconds.

- :class:`LatencyLog`: each frame's delay from its arrival (when the reader got it) to its label
  file being written, kept as a histogram (1% resolution), so memory stays flat however long
  the stream; ``p50_ms``, ``p95_ms``, ``max_ms`` in the summary's ``latency_ms``.
- :class:`LiveSink`: :class:`~bmvseg.output.frames.FrameSink`'s label files, and the overlay as
  MPEG-TS (playable at any moment, unlike an MP4 whose index is written at the end) at its final
  name ``overlay.ts``, or sent to a URL (``tcp://``, ``udp://``, ``srt://``, ... anything FFmpeg
  writes to).  The overlay of a live run is never removed: what was written plays.
- :func:`live_state`: a live summary's state: ``running`` while it is rewritten, ``interrupted``
  after Ctrl-C or SIGTERM, else a finished video's (:func:`bmvseg.output.summary.state`);
  ``failed`` (with ``error``) when the run ended by an error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import av
import numpy as np

from bmvseg.data.classes import ClassSet
from bmvseg.errors import BmvsegError
from bmvseg.output.frames import FrameSink, OverlayEncoder, label_png
from bmvseg.output.rundir import RunDir
from bmvseg.output.safe import create_new
from bmvseg.output.summary import state
from bmvseg.video.encode import OVERLAY_OPTIONS
from bmvseg.video.inputs import reason

RUNNING = "running"  # summary.json of a live run that goes on (rewritten every few seconds)
INTERRUPTED = "interrupted"  # stopped by Ctrl-C or SIGTERM: every frame it says is written
FAILED = "failed"  # ended by an error (in "error"); "complete" is false
LIVE_OVERLAY = "overlay.ts"
# zerolatency: no look-ahead, so each overlay frame leaves the encoder as it is written.
LIVE_OVERLAY_OPTIONS = {**OVERLAY_OPTIONS, "tune": "zerolatency"}


def live_state(summary: dict, *, running: bool, interrupted: bool) -> str:
    """The state a live run's summary records (see the module docstring)."""
    if running:
        return RUNNING
    return INTERRUPTED if interrupted else state(summary)


class LatencyLog:
    """Delays in a log-spaced histogram: quantiles within 1%, constant memory."""

    LOW_S = 1e-4  # delays below 0.1 ms share the first bin
    RATIO = 1.01
    BINS = 1700  # up to LOW_S * RATIO**BINS, about 2 hours

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS, np.int64)
        self.count = 0
        self.max_s = 0.0

    def add(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        b = 0 if seconds <= self.LOW_S else int(math.log(seconds / self.LOW_S, self.RATIO)) + 1
        self.counts[min(b, self.BINS - 1)] += 1
        self.count += 1
        self.max_s = max(self.max_s, seconds)

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile in seconds (a bin's upper edge, at most the maximum)."""
        if not self.count:
            return None
        b = int(np.searchsorted(np.cumsum(self.counts), math.ceil(q * self.count)))
        return min(self.LOW_S * self.RATIO**b, self.max_s)

    def summary(self) -> dict[str, Any]:
        """``{"frames", "p50_ms", "p95_ms", "max_ms"}`` (None before the first frame)."""
        ms = {f"p{round(q * 100)}_ms": self.quantile(q) for q in (0.5, 0.95)}
        out = {k: None if v is None else round(1000 * v, 1) for k, v in ms.items()}
        return {"frames": self.count, **out,
                "max_ms": round(1000 * self.max_s, 1) if self.count else None}  # fmt: skip

    def line(self) -> str:
        return delay_line(self.summary())


def delay_line(latency_ms: dict[str, Any]) -> str:
    """A summary's ``latency_ms`` in words: ``delay p50 120 ms, p95 300 ms, max 410 ms``."""
    s = latency_ms
    if not s["frames"]:
        return "delay -"
    return f"delay p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, max {s['max_ms']:.0f} ms"


def _streamed_overlay(dest: Any, fps: float, classes: ClassSet) -> OverlayEncoder:
    """The overlay as MPEG-TS, into a file or a URL."""
    try:
        return OverlayEncoder(dest, fps, classes, container_format="mpegts",
                              options=LIVE_OVERLAY_OPTIONS)  # fmt: skip
    except (OSError, av.FFmpegError) as exc:  # a URL that cannot be opened for writing
        raise BmvsegError(f"cannot send the overlay to {dest}: {reason(exc)}") from None


class LiveSink(FrameSink):
    """Label files as in every run; the overlay streamed (see the module docstring).

    ``arrived(index)`` gives (and forgets) when a frame arrived; its delay is logged once its
    label file is written.
    """

    def __init__(self, out: RunDir, *, overlay: bool, overlay_url: str | None, fps: float,
                 classes: ClassSet, arrived: Callable[[int], float | None]) -> None:  # fmt: skip
        super().__init__(out, overlay=False)
        self.arrived = arrived
        self.latency = LatencyLog()
        self.written = 0
        self.overlay_path = out.path / LIVE_OVERLAY
        self.overlay_url = overlay_url
        if overlay_url is not None:
            self._encoder = _streamed_overlay(overlay_url, fps, classes)
        elif overlay:
            out.tmp_path(self.overlay_path)  # a name the run's record holds (else a bug)
            self._file = create_new(self.overlay_path)
            self._encoder = _streamed_overlay(self._file, fps, classes)

    def write(self, res: Any) -> None:
        self.write_png(res.index, label_png(res.labels))
        t = self.arrived(res.index)
        if t is not None:
            self.latency.add(time.monotonic() - t)
        self.written += 1
        if self._encoder is None:
            return
        try:
            self._encoder.add(res)
        except (OSError, av.FFmpegError) as exc:  # FFmpeg connects on the first frame
            if self.overlay_url is None:
                raise
            raise BmvsegError(f"cannot send the overlay to {self.overlay_url}: "
                              f"{reason(exc)}") from None  # fmt: skip

    def close(self) -> None:
        """Finish the overlay where it is (it has been playable all along)."""
        encoder, file = self._encoder, self._file
        self._encoder = self._file = None
        try:
            if encoder is not None:
                encoder.close()
        finally:
            if file is not None:
                file.close()

    def discard(self) -> None:
        """A failed run: the overlay ends where it got to (every frame in it is labelled)."""
        try:
            self.close()
        except Exception:  # noqa: BLE001, S110 - failing already: that error is reported
            pass
