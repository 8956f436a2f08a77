"""Progress of long work on standard error, decided once for the whole process.

On a terminal a bar (done, rate, ETA when the total is known; a counter when it is not); when
standard error is not a terminal (a log file, CI), one plain line every :data:`LINE_EVERY_S`
seconds and a last one when the work ends, so a long run in a log is never silent and a log
never fills with bars.  The command line sets the mode once (:func:`configure`: ``--no-progress``
or ``--quiet`` turn it off, ``--progress-every`` changes the period); library code only makes
bars with :func:`bar` and never decides itself.  Progress never goes to standard output.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm

LINE_EVERY_S = 10.0  # a log gets one line this often: enough to tell working from hung
_settings: dict[str, Any] = {"enabled": True, "every": LINE_EVERY_S}


def configure(*, enabled: bool = True, every: float = LINE_EVERY_S) -> None:
    """Progress on or off for the rest of the process, and the period of plain lines."""
    _settings.update(enabled=enabled, every=every)


def enabled() -> bool:
    return bool(_settings["enabled"])


def bar(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
        unit: str = "it", leave: bool = True, disable: bool = False,
        stream: TextIO | None = None) -> Bar:  # fmt: skip
    """A progress reporter in the process's mode (see the module docstring); ``disable``
    silences this one (a caller's own switch)."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    return Bar(iterable, total=total, desc=desc, unit=unit, leave=leave,
               show=enabled() and not disable, stream=stream)  # fmt: skip


class Bar:
    """tqdm's everyday subset (``update``, ``total``, ``n``, ``set_postfix``, ``close``,
    iteration, ``with``) shown as a bar, as plain lines, or not at all."""

    def __init__(self, iterable: Iterable | None, *, total: int | None, desc: str, unit: str,
                 leave: bool, show: bool, stream: TextIO | None) -> None:  # fmt: skip
        self._iterable = iterable
        self._stream = stream or sys.stderr
        self.desc, self.unit, self.n, self._total = desc, unit, 0, total
        self._postfix = ""
        self._tqdm: tqdm | None = None
        self._lines = False
        self._t0 = self._last = time.monotonic()
        self._printed = False
        if not show:
            return
        if _is_terminal(self._stream):
            sized = _columns(self._stream) > 0  # a terminal that reports no size gets 80x24
            self._tqdm = tqdm(total=total, desc=desc, unit=unit, leave=leave, file=self._stream,
                              dynamic_ncols=sized, ncols=None if sized else 80,
                              nrows=None if sized else 24, smoothing=0.1)  # fmt: skip
        else:
            self._lines = True

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value
        if self._tqdm is not None:
            self._tqdm.total = value
            self._tqdm.refresh()

    def __iter__(self) -> Iterator:
        for item in self._iterable or ():
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._tqdm is not None:
            self._tqdm.update(n)
        elif self._lines and time.monotonic() - self._last >= _settings["every"]:
            self._line()

    def set_postfix_str(self, text: str) -> None:
        self._postfix = text
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(text)

    def set_postfix(self, **values: object) -> None:
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in values.items()))

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
        elif self._lines and self._printed:  # a log that saw the work going also sees it end
            self._line(done=True)
        self._lines = False

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self, done: bool = False) -> None:
        """One plain line: ``desc: 120/900 frames (13%), 4.1 frames/s, ETA 3:10``."""
        now = time.monotonic()
        self._last, self._printed = now, True
        rate = self.n / max(now - self._t0, 1e-9)
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{count} {self.unit}s"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.1f} {self.unit}s/s")
        if done:
            parts.append(f"done in {_clock(now - self._t0)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {_clock(max(self.total - self.n, 0) / rate)}")
        if self._postfix:
            parts.append(self._postfix)
        head = f"{self.desc}: " if self.desc else ""
        try:
            print(f"{head}{', '.join(parts)}", file=self._stream, flush=True)
        except (OSError, ValueError):  # the reader went away: progress is not worth failing for
            self._lines = False


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
