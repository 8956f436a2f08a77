"""The driver of a segmentation job: plan chunks, spread them over Ray workers, write, resume.

Without Ray (no workers, no cluster address) the same job runs its chunks in this process, so
several inputs get the same layout and job record with or without the ``ray`` extra.

Layout: with one input, ``out`` is laid out as ``bmvseg segment`` lays it out (``labels/``,
``overlay.mp4``, ``run.json``, ``summary.json`` last); with several, each video gets
``out/<name>/`` with that layout (names from :mod:`bmvseg.distributed.inputs`) and
``out/job.json`` lists every video's state: ``pending``, ``complete`` or ``failed`` with its
one-line error.

Only the driver writes.  A chunk's labels and overlay piece are written as soon as its result
arrives, then a marker ``<video dir>/.chunks/<chunk>.json`` (atomic, after everything it vouches
for), so a killed driver loses at most the chunks in flight: ``resume`` skips complete videos
(``summary.json`` says so) and every chunk with a marker.  When all chunks of a video are in, the
pieces are joined into ``overlay.mp4``, ``summary.json`` records the chunking, and ``.chunks/``
is removed.

Faults: a worker process that dies mid-chunk is restarted by Ray (``max_restarts``) and its
chunks go to whichever worker is free (the driver retries them, up to ``MAX_TASK_RETRIES``
times each), so a node lost for good, whose workers cannot be restarted anywhere, stalls
nothing; a video whose chunk fails (bad stream, worker lost too often) is marked failed and the
others go on; the exit status is non-zero if any video failed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bmvseg.distributed.chunks import DEFAULT_CHUNK_FRAMES, Chunk, plan_chunks
from bmvseg.distributed.inputs import VideoInput, assign_names, expand_inputs
from bmvseg.distributed.outdir import CHUNK_DIR, read_json
from bmvseg.distributed.overlay import join_pieces
from bmvseg.distributed.worker import ChunkResult, ChunkSegmenter
from bmvseg.errors import BmvsegError
from bmvseg.output import RunDir, claim_output_dir
from bmvseg.run.options import RunOptions
from bmvseg.run.iterate import open_video
from bmvseg.run.to_dir import run_record

MAX_TASK_RETRIES = 3  # a chunk whose worker dies more often than this fails its video
PROBES = 20  # a restarted worker that fails this many probes in a row stays out of the job
IN_FLIGHT_PER_WORKER = 2  # one running, one queued: a worker never waits for the driver
WORKER_PREFIX = "bmvseg-worker-"  # Ray actor names: bmvseg-worker-<job token>-<n>
FAILED_EXIT = 2  # as a user error: at least one video could not be segmented


def import_ray() -> Any:
    """Ray, or a one-line error saying how to install it (it is an optional extra)."""
    try:
        import ray
    except ImportError as exc:
        raise BmvsegError(
            'distributed runs need Ray: pip install -e ".[ray]" (or pip install "ray>=2.9")'
        ) from exc
    return ray


@dataclass
class _Video:
    """One video's progress through the job."""

    input: VideoInput
    dir: Path
    state: str = "pending"
    error: str | None = None
    identity: dict = field(default_factory=dict)
    about: dict = field(default_factory=dict)  # the video's path and size, for the records
    frame_count: int | None = None
    rotation: int = 0
    chunks: list[Chunk] = field(default_factory=list)
    done: dict[str, dict] = field(default_factory=dict)  # chunk key -> that chunk's stats
    resumed: int = 0  # chunks found finished on disk
    frames: int = 0
    out: RunDir | None = None  # the video's folder, claimed by the ownership rule
    t0: float = 0.0

    def record(self) -> dict:
        return {
            "video": str(self.input.path),
            "name": self.input.name,
            "renamed_from": self.input.stem if self.input.name != self.input.stem else None,
            "output": self.dir.name,
            "state": self.state,
            "error": self.error,
            "frames": self.frames if self.state == "complete" else None,
        }


@dataclass
class _Job:
    """What every step of a job needs to know about it."""

    out: Path
    videos: list[_Video]
    options: RunOptions
    size: int  # chunk length, frames
    single: bool  # one input: ``out`` is that video's folder, no job.json
    overlay: bool
    info: dict = field(default_factory=dict)  # workers, where they run, start-up times
    root: RunDir | None = None  # several inputs: the job's own folder (job.json)


def run_job(
    inputs: list[str | os.PathLike],
    out: str | os.PathLike,
    *,
    options: RunOptions | None = None,
    workers: int | None = None,
    ray_address: str | None = None,
    threads_per_worker: int = 1,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    resume: bool = False,
    overwrite: bool = False,
    overlay: bool = True,
    progress: bool | None = None,
    command: str | None = None,
) -> int:
    """Segment every video ``inputs`` name into ``out``; returns the exit status.

    Without ``workers`` and ``ray_address`` the chunks run in this process, one after another,
    and Ray is not imported.  Otherwise ``workers`` actors (default: as many as the cluster's
    CPUs allow at ``threads_per_worker`` torch threads each) run on the Ray cluster at
    ``ray_address``, or on one started here with ``workers * threads_per_worker`` CPUs; a Ray
    session already initialised in this process is used as it is.  ``progress`` None shows the
    bar only on a terminal; ``command`` is recorded in the summaries.  A user error that stops
    the whole job (no inputs, a bad checkpoint, an unreachable cluster) is raised as
    :class:`BmvsegError`; with one input, so is that video's failure.
    """
    options = options or RunOptions()
    out = Path(out)
    options.validate()
    if not isinstance(options.model, str):
        raise BmvsegError("a job's model must be a name or a file:function (workers build it)")
    plan_chunks(None, chunk_frames)  # refuses a bad chunk length before anything runs
    size = chunk_frames
    if workers is not None and workers < 1:
        raise BmvsegError(f"--workers must be >= 1, got {workers}")
    if threads_per_worker < 1:
        raise BmvsegError(f"threads per worker must be >= 1, got {threads_per_worker}")
    found = assign_names(expand_inputs(list(inputs), exclude=out))
    single = len(found) == 1
    videos = [_Video(v, out if single else out / v.name) for v in found]
    for v in videos:
        _probe(v, options, size, single)
    for v in videos:
        if v.state == "pending" and resume:
            _check_resume(v)
    todo = [v for v in videos if v.state == "pending"]

    local = workers is None and ray_address is None
    ray = None if local else import_ray()
    job = _Job(out, videos, options, size, single, overlay)
    job.info["command"] = command or "bmvseg.distributed.run_job (Python)"
    job.info["runs_on"] = "this process" if local else ray_address or "Ray started here"
    started = False
    bar = None
    t0 = time.perf_counter()
    try:
        if todo and local:
            pool: _LocalPool | _RayPool = _LocalPool(options)
        elif todo:
            started = _connect(ray, ray_address, workers, threads_per_worker)
            job.info["ray_start_s"] = round(time.perf_counter() - t0, 3)
            pool = _RayPool(ray, _start_workers(ray, options, workers, threads_per_worker,
                                                sum(len(v.chunks) for v in todo)))  # fmt: skip
            job.info["threads_per_worker"] = threads_per_worker
        if todo:
            job.info["workers"] = pool.slots
            job.info["workers_ready_s"] = round(time.perf_counter() - t0, 3)  # serial start-up
        if not single:  # the job's folder, by the ownership rule (bmvseg.output)
            job.root = claim_output_dir(out, "job", {"options": options.identity()},
                                        inputs=[v.input.path for v in videos], resume=resume,
                                        overwrite=overwrite)  # fmt: skip
        for v in todo:
            _open_output(v, resume=resume, overwrite=overwrite, overlay=overlay)
        _write_job(job)
        if todo:
            known = all(v.frame_count for v in todo)
            bar = tqdm(
                total=sum(v.frame_count or 0 for v in todo)
                - sum(st["frames"] for v in todo for st in v.done.values())
                if known
                else None,
                unit="frame",
                desc=f"{options.scheme} k={options.interval}",
                disable=None if progress is None else not progress,
                smoothing=0.1,
            )
            _schedule(pool, todo, job, bar)
    finally:
        if bar is not None:
            bar.close()
        if started:
            ray.shutdown()
    failed = [v for v in videos if v.state == "failed"]
    if single and failed:
        raise BmvsegError(failed[0].error or "failed")
    for v in failed:  # one line each, naming the video
        error = v.error or "failed"
        named = error if str(v.input.path) in error else f"{v.input.path}: {error}"
        print(f"bmvseg segment: error: {named}", file=sys.stderr)
    complete = len(videos) - len(failed)
    where = out if single else out / "job.json"
    print(f"{complete} of {len(videos)} videos complete; {sum(v.frames for v in videos)} frames; "
          f"output in {where}", flush=True)  # fmt: skip
    return FAILED_EXIT if failed else 0


# -- before anything runs ------------------------------------------------------------------------


def _probe(v: _Video, options: RunOptions, size: int, single: bool) -> None:
    """Frame count and identity, or the video's one-line error (raised for a single input)."""
    try:
        with open_video(v.input.path, options) as reader:
            v.frame_count = reader.frame_count
            v.rotation = reader.rotation
            for text in reader.notices:  # stream choice, frame rate, motion source
                print(f"bmvseg: notice: {text}", flush=True)
        v.identity, v.about = run_record(v.input.path, options)  # as segment_to_dir's
    except BmvsegError as exc:
        if single:
            raise
        v.state, v.error = "failed", str(exc)
        return
    except OSError as exc:
        if single:
            raise BmvsegError(f"{v.input.path}: {exc.strerror or exc}") from exc
        v.state, v.error = "failed", f"{v.input.path}: {exc.strerror or exc}"
        return
    v.chunks = plan_chunks(v.frame_count, size, options.engine_config().schedule().stable)


def _check_resume(v: _Video) -> None:
    """A finished video is skipped; a different run in its folder stops the job untouched."""
    previous = read_json(v.dir / "run.json")
    if previous is not None and {k: previous.get(k) for k in v.identity} != v.identity:
        changed = sorted(k for k in v.identity if previous.get(k) != v.identity[k])
        raise BmvsegError(
            f"{v.dir} holds a different run ({', '.join(changed)} differ); "
            "use --overwrite or another directory"
        )
    summary = read_json(v.dir / "summary.json")
    if previous is not None and summary and summary.get("complete"):
        v.state, v.frames = "complete", int(summary.get("frames") or 0)


def _connect(ray: Any, address: str | None, workers: int | None, threads: int) -> bool:
    """Join or start a Ray cluster; True when this call started (and must stop) it."""
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False, "include_dashboard": False}
    if address:
        try:
            ray.init(address=address, **quiet)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError, ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BmvsegError(f"cannot connect to the Ray cluster at {address}: {first}") from exc
        return True
    cpus = (workers or max(1, (os.cpu_count() or 1) // threads)) * threads
    ray.init(num_cpus=cpus, **quiet)
    return True


def _check_reachable(address: str) -> None:
    """A quick TCP check: Ray itself retries an unreachable address for a minute, noisily."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise BmvsegError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise BmvsegError(
            f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}"
        ) from exc


def _start_workers(
    ray: Any, options: RunOptions, workers: int | None, threads: int, chunks: int
) -> list:
    """One actor per worker, each with its engine built; a build error is one line."""
    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 0))
    device = str(options.device)
    gpus = 1 if device.startswith("cuda") else 0
    if gpus and not resources.get("GPU"):
        raise BmvsegError(f"--device {device}: the Ray cluster has no GPUs")
    most = int(resources["GPU"]) if gpus else max(1, cpus // threads)
    n = workers or most
    if n > most:
        need = f"{n} GPUs" if gpus else f"{n * threads} CPUs ({n} workers x {threads} threads)"
        raise BmvsegError(f"the Ray cluster cannot hold the workers: they need {need}, "
                          f"it has {int(resources.get('GPU', 0)) if gpus else cpus}")  # fmt: skip
    n = max(1, min(n, chunks))
    placement = {
        "num_cpus": threads,
        "num_gpus": gpus,
        "max_restarts": -1,
        "max_task_retries": 0,  # the driver retries lost chunks on any worker (see _RayPool)
        "scheduling_strategy": "SPREAD",
    }
    # Named (unique per job) so that tools and tests can find a worker through Ray's API.
    token = uuid.uuid4().hex[:8]
    actor = ray.remote(ChunkSegmenter)
    actors = [
        actor.options(name=f"{WORKER_PREFIX}{token}-{i}", **placement).remote(options, threads)
        for i in range(n)
    ]
    try:
        ray.get([a.info.remote() for a in actors])
    except Exception as exc:
        raise BmvsegError(_task_error(exc, "starting a worker")) from exc
    return actors


def _open_output(v: _Video, *, resume: bool, overwrite: bool, overlay: bool) -> None:
    """The video's output folder, its run.json, and the chunks already finished there."""
    v.out = claim_output_dir(v.dir, "chunked", v.identity, inputs=[v.input.path], resume=resume,
                             overwrite=overwrite)  # fmt: skip
    v.out.write_json("run.json", {**v.about, **v.identity})
    if resume:
        for c in v.chunks:
            stats = read_json(_marker(v, c))
            frames = stats.get("frames") if stats else None
            if not isinstance(frames, int) or (overlay and frames and not _piece(v, c).is_file()):
                continue  # not finished, or finished without the overlay piece now wanted
            v.done[c.key] = stats
        v.resumed = len(v.done)
    v.t0 = time.perf_counter()


def _marker(v: _Video, c: Chunk) -> Path:
    return v.dir / CHUNK_DIR / f"{c.key}.json"


def _piece(v: _Video, c: Chunk) -> Path:
    return v.dir / CHUNK_DIR / f"{c.key}.mp4"


# -- the run -------------------------------------------------------------------------------------


@dataclass
class _Done:
    """A finished chunk: its result, or its error; ``lost``: the worker died, run it again."""

    slot: int
    item: tuple
    result: ChunkResult | None = None
    error: str | None = None
    lost: bool = False


class _RayPool:
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

    def next(self) -> _Done | None:
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
            return _Done(slot, item, result=self.ray.get(ref))
        except Exception as exc:
            from ray import exceptions as rex

            if isinstance(exc, rex.RayActorError):
                if slot not in self.down:
                    self.down.add(slot)
                    self._probe(slot)
                return _Done(slot, item, error=_task_error(exc, "segmenting"), lost=True)
            return _Done(slot, item, error=_task_error(exc, f"segmenting frames {item[1].key}"))


class _LocalPool:
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

    def next(self) -> _Done:
        item, overlay = self.queue.popleft()
        v, c = item
        try:
            return _Done(0, item, result=self.worker.run_chunk(str(v.input.path), c, overlay))
        except BmvsegError as exc:
            return _Done(0, item, error=str(exc))


def _schedule(pool: _LocalPool | _RayPool, todo: list[_Video], job: _Job, bar: tqdm) -> None:
    """Keep every worker busy with chunks in video order; write each result as it comes."""
    queue = deque((v, c) for v in todo for c in v.chunks if c.key not in v.done)
    for v in todo:
        if all(c.key in v.done for c in v.chunks):  # every chunk finished before a resume
            _maybe_finish(v, job)
    load = dict.fromkeys(range(pool.slots), 0)
    attempts: dict[tuple, int] = {}
    n_videos = len(job.videos)

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
            pool.submit(slot, (v, c), job.overlay)
            load[slot] += 1

    def postfix() -> None:
        finished = sum(v.state != "pending" for v in job.videos)
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
            _fail(v, f"worker lost {n} times while segmenting frames {c.key}: {done.error}", job)
            postfix()
            continue
        if done.error is not None:
            _fail(v, done.error, job)
            postfix()
            continue
        _store(v, done.result)
        bar.update(done.result.stats["frames"])
        if bar.total is not None and bar.n > bar.total:
            bar.total = bar.n
        if len(v.done) == len(v.chunks):
            _maybe_finish(v, job)
        postfix()
    for v, c in queue:  # no worker left to run them
        if v.state == "pending":
            _fail(v, f"no worker left to segment frames {c.key} (every worker was lost)", job)


def _task_error(exc: Exception, doing: str) -> str:
    """One line for a failed Ray call: the user error itself, or what was lost."""
    from ray import exceptions as rex

    if isinstance(exc, rex.RayTaskError):
        cause = exc.cause
        if isinstance(cause, BmvsegError):
            return str(cause)
        if cause is not None:
            return f"{type(cause).__name__} while {doing}: {_first_line(cause)}"
    if isinstance(exc, rex.RayActorError):
        return f"worker lost while {doing}: {_first_line(exc)}"
    return f"{type(exc).__name__} while {doing}: {_first_line(exc)}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _store(v: _Video, res: ChunkResult) -> None:
    """Labels and overlay piece first, then the marker that vouches for them."""
    for i, data in enumerate(res.labels):
        v.out.write_bytes(v.out.label_path(res.first + i), data)
    if res.overlay is not None:
        v.out.write_bytes(_piece(v, res.chunk), res.overlay)
    v.out.write_bytes(_marker(v, res.chunk), json.dumps(res.stats, default=str).encode())
    v.done[res.chunk.key] = res.stats


def _fail(v: _Video, error: str, job: _Job) -> None:
    v.state, v.error = "failed", error
    _write_job(job)


def _maybe_finish(v: _Video, job: _Job) -> None:
    """All chunks in: check they tile the video, join the overlay, write summary.json."""
    stats = [v.done[c.key] for c in v.chunks]
    ended = False
    for c, st in zip(v.chunks, stats, strict=True):
        if ended and st["frames"]:
            _fail(v, f"frames {c.key} decoded after the stream ended earlier in another chunk "
                  "(non-deterministic decode?)", job)  # fmt: skip
            return
        if c.end is None or st["frames"] < c.end - c.start:
            ended = True
    v.frames = sum(st["frames"] for st in stats)
    if v.frames == 0:
        _fail(v, f"{v.input.path}: no frame could be decoded", job)
        return
    if job.overlay:
        done = [(c, st) for c, st in zip(v.chunks, stats, strict=True) if st["frames"]]
        pieces = [_piece(v, c) for c, _ in done]
        t0 = done[0][1].get("first_time")
        times = [st.get("first_time") for _, st in done]
        starts = None if None in times else [t - t0 for t in times]
        final = v.dir / "overlay.mp4"
        tmp = v.out.tmp_path(final)
        try:
            join_pieces(pieces, tmp, starts)
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BmvsegError(f"cannot write {final}: {exc.strerror or exc}") from exc
    wall = time.perf_counter() - v.t0
    first = next(st for st in stats if st["frames"])
    summary = {
        **v.about,
        **v.identity,
        "complete": True,
        "stream_ended_early": any(st["stream_ended_early"] for st in stats),
        "frames": v.frames,
        "wall_time_s": round(wall, 3),
        "fps": round(v.frames / wall, 3) if wall > 0 else None,
        "motion_source": first["motion_source"],
        "motion_reason": first["motion_reason"],
        "width": first["width"],
        "height": first["height"],
        "rotation": v.rotation,
        "keyframes": [kf for st in stats for kf in st.get("keyframes", [])],
        "damaged_frames": [i for st in stats for i in st.get("damaged_frames", [])],
        "concealed_frames": [i for st in stats for i in st.get("concealed_frames", [])],
        "device": str(job.options.device),
        "job": job.info,
        "chunking": {
            "chunk_frames": job.size,
            "resumed_chunks": v.resumed,
            "chunks": [{k: x for k, x in st.items() if k != "keyframes"} for st in stats],
        },
    }
    v.out.write_json("summary.json", summary)
    chunks = v.dir / CHUNK_DIR  # the chunk state the record names, then its folder if empty
    for f in chunks.iterdir() if chunks.is_dir() else ():
        if f.is_file() and v.out.owns(f"{CHUNK_DIR}/{f.name}"):
            f.unlink()
    with contextlib.suppress(OSError):
        chunks.rmdir()
    v.state = "complete"
    _write_job(job)


def _write_job(job: _Job) -> None:
    """``out/job.json`` (several inputs only: one input keeps ``bmvseg segment``'s layout)."""
    if job.single:
        return
    record = {
        "complete": all(v.state == "complete" for v in job.videos),
        "videos": [v.record() for v in job.videos],
        "failed": sum(v.state == "failed" for v in job.videos),
        "options": job.options.identity(),
        "chunk_frames": job.size,
        **job.info,
    }
    if job.root is not None:  # claimed once the job starts writing
        job.root.write_json("job.json", record)
