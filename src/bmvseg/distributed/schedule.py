"""Keeping every worker busy with a job's chunks, in video order, and writing each result.

Each worker gets at most :data:`IN_FLIGHT_PER_WORKER` chunks at once (one running, one queued,
so a worker never waits for the driver).  A chunk whose worker died goes back to the front of
the queue for any worker, up to :data:`~bmvseg.distributed.pool.MAX_TASK_RETRIES` times; a chunk
that fails otherwise fails its video and the others go on.
"""

from __future__ import annotations

from collections import deque

from bmvseg.distributed.pool import MAX_TASK_RETRIES, Pool
from bmvseg.distributed.records import Records, Video
from bmvseg.progress import Bar

IN_FLIGHT_PER_WORKER = 2


def schedule(pool: Pool, todo: list[Video], records: Records, bar: Bar) -> None:
    """Run every chunk of ``todo`` not finished yet; finish each video as its last one lands."""
    queue = deque((v, c) for v in todo for c in v.chunks if c.key not in v.done)
    for v in todo:
        if all(c.key in v.done for c in v.chunks):  # every chunk finished before a resume
            records.finish(v)
    load = dict.fromkeys(range(pool.slots), 0)
    attempts: dict[tuple, int] = {}
    n_videos = len(records.videos)

    def fill() -> None:
        while queue:
            slots = [s for s in load if pool.usable(s)]
            if not slots:
                return
            slot = min(slots, key=load.get)
            if load[slot] >= IN_FLIGHT_PER_WORKER:
                return
            v, c = queue.popleft()
            if v.state != "pending":
                continue
            pool.submit(slot, (v, c), records.overlay)
            load[slot] += 1

    def postfix() -> None:
        finished = sum(v.state != "pending" for v in records.videos)
        bar.set_postfix_str(f"videos {finished}/{n_videos}")

    postfix()
    while True:
        fill()
        if not pool.busy() and not (queue and pool.recovering()):
            break
        done = pool.next()
        if done is None:  # a worker is back, or gone for good
            continue
        load[done.slot] -= 1
        v, c = done.item
        if v.state != "pending":
            continue
        if done.lost:
            attempts[c.start, v.input.name] = n = attempts.get((c.start, v.input.name), 0) + 1
            if n <= MAX_TASK_RETRIES:
                queue.appendleft((v, c))  # to whichever worker is free
                continue
            records.fail(v, f"worker lost {n} times while segmenting frames {c.key}: {done.error}")
        elif done.error is not None:
            records.fail(v, done.error)
        else:
            records.store(v, done.result)
            bar.update(done.result.stats["frames"])
            if bar.total is not None and bar.n > bar.total:
                bar.total = bar.n
            if len(v.done) == len(v.chunks):
                records.finish(v)
        postfix()
    for v, c in queue:  # no worker left to run them
        if v.state == "pending":
            records.fail(v, f"no worker left to segment frames {c.key} (every worker was lost)")
