"""Work beside the model: decoding ahead of it and writing outputs behind it, in threads.

Decoding (FFmpeg), PNG encoding (OpenCV), overlay blending (NumPy) and overlay encoding (x264)
release the GIL for most of their time, so a thread each overlaps them with the model on a
multi-core machine.  Queues are bounded (memory stays flat) and an exception in a thread is
re-raised in the caller at the next hand-over, so a failure is never silent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_DONE = object()


def ahead(items: Iterable[Any], depth: int = 8) -> Iterator[Any]:
    """``items`` produced by a background thread up to ``depth`` ahead of the consumer.

    An error in the thread is raised in the consumer at its next item, ahead of the items
    still queued; once the consumer stops (an error of its own, or enough items), the thread
    stops at its next hand-over, never blocked on a full queue that nobody reads.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    failure: list[BaseException] = []

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there at once
            failure.append(exc)
            put(_DONE)

    thread = threading.Thread(target=produce, name="bmvseg-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if failure:
                raise failure[0]
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


class Worker:
    """Runs ``handle(item)`` for each submitted item in order, in one background thread.

    ``busy`` is the thread's working time (seconds), ``waited`` the time ``submit`` blocked
    because the queue was full: the share of writing that the caller did not hide.
    """

    def __init__(self, handle: Callable[[Any], None], depth: int = 8, name: str = "worker"):
        self.handle = handle
        self.busy = 0.0
        self.waited = 0.0
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"bmvseg-{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain: the caller learns of the error at its next submit/close
            t0 = time.perf_counter()
            try:
                self.handle(item)
            except BaseException as exc:
                self._error = exc
            self.busy += time.perf_counter() - t0

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, item: Any) -> None:
        self._raise()
        t0 = time.perf_counter()
        self._q.put(item)
        self.waited += time.perf_counter() - t0

    def close(self) -> None:
        """Wait for every submitted item; re-raise the first error of the thread.  Calling it
        again only re-raises: a run that fails still ends with its writer stopped."""
        if not self._closed:
            self._closed = True
            t0 = time.perf_counter()
            self._q.put(_DONE)
            self._thread.join()
            self.waited += time.perf_counter() - t0
        self._raise()

    def stop(self) -> None:
        """End the thread after the items already handed to it, whatever they raise (for a
        run that is failing already: its own error is the one reported)."""
        try:
            self.close()
        except BaseException:  # noqa: BLE001
            pass
