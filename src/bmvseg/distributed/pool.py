"""Where a job's chunks run: Ray actors, or this process (no Ray), behind one interface.

A pool has ``slots`` workers; the scheduler submits ``(video, chunk)`` items to a slot and takes
finished ones back with :meth:`next`, as a :class:`Done`.  A chunk whose worker died comes back
``lost``: the scheduler gives it to any worker again, up to :data:`MAX_TASK_RETRIES` times.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from bmvseg.distributed.cluster import task_error
from bmvseg.distributed.worker import ChunkResult, ChunkSegmenter
from bmvseg.errors import BmvsegError
from bmvseg.run.options import RunOptions

MAX_TASK_RETRIES = 3  # a chunk whose worker dies more often than this fails its video
PROBES = 20  # a restarted worker that fails this many probes in a row stays out of the job


@dataclass
class Done:
    """A finished chunk: its result, or its error; ``lost``: the worker died, run it again."""

    slot: int
    item: tuple
    result: ChunkResult | None = None
    error: str | None = None
    lost: bool = False


class Pool(Protocol):
    slots: int

    def usable(self, slot: int) -> bool: ...
    def submit(self, slot: int, item: tuple, overlay: bool) -> None: ...
    def busy(self) -> bool: ...
    def recovering(self) -> bool: ...
    def next(self) -> Done | None: ...


class RayPool:
    """Chunks on Ray actors: submit to a worker slot, take results as they finish.

    A worker that dies is restarted by Ray (``max_restarts``); its chunks come back ``lost`` and
    the scheduler gives them to any worker.  The slot is left alone until a probe answers, so a
    worker whose node is gone for good (no room to restart it) holds no chunk hostage.
    """

    def __init__(self, ray: Any, actors: list) -> None:
        self.ray, self.actors = ray, actors
        self.slots = len(actors)
        self.in_flight: dict = {}
        self.probes: dict = {}  # probe ref -> slot, for slots whose worker died
        self.down: set[int] = set()
        self.failed_probes: dict[int, int] = {}

    def _probe(self, slot: int) -> None:
        """Ask a dead worker who it is: answered once Ray has restarted it."""
        self.probes[self.actors[slot].info.options(max_task_retries=-1).remote()] = slot

    def usable(self, slot: int) -> bool:
        return slot not in self.down

    def submit(self, slot: int, item: tuple, overlay: bool) -> None:
        v, c = item
        ref = self.actors[slot].run_chunk.remote(str(v.input.path), c, overlay)
        self.in_flight[ref] = (slot, item)

    def busy(self) -> bool:
        return bool(self.in_flight)

    def recovering(self) -> bool:
        return bool(self.probes)

    def next(self) -> Done | None:
        """The next finished chunk, or None when a worker came back (or is gone for good)."""
        (ref,), _ = self.ray.wait([*self.in_flight, *self.probes], num_returns=1)
        if ref in self.probes:
            slot = self.probes.pop(ref)
            try:
                self.ray.get(ref)
                self.down.discard(slot)
            except Exception:  # noqa: BLE001 - still restarting, or dead for good
                self.failed_probes[slot] = self.failed_probes.get(slot, 0) + 1
                if self.failed_probes[slot] < PROBES:
                    self._probe(slot)
            return None
        slot, item = self.in_flight.pop(ref)
        try:
            return Done(slot, item, result=self.ray.get(ref))
        except Exception as exc:
            from ray import exceptions as rex

            if isinstance(exc, rex.RayActorError):
                if slot not in self.down:
                    self.down.add(slot)
                    self._probe(slot)
                return Done(slot, item, error=task_error(exc, "segmenting"), lost=True)
            return Done(slot, item, error=task_error(exc, f"segmenting frames {item[1].key}"))


class LocalPool:
    """Chunks in this process, one after another: several inputs without Ray."""

    slots = 1

    def __init__(self, options: RunOptions) -> None:
        self.worker = ChunkSegmenter(options)
        self.worker.info()  # a build error is the job's one line
        self.queue: deque = deque()

    def usable(self, slot: int) -> bool:
        return True

    def submit(self, slot: int, item: tuple, overlay: bool) -> None:
        self.queue.append((item, overlay))

    def busy(self) -> bool:
        return bool(self.queue)

    def recovering(self) -> bool:
        return False

    def next(self) -> Done:
        item, overlay = self.queue.popleft()
        v, c = item
        try:
            return Done(0, item, result=self.worker.run_chunk(str(v.input.path), c, overlay))
        except BmvsegError as exc:
            return Done(0, item, error=str(exc))
