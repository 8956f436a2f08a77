"""The driver of a segmentation job: check everything, claim the folders, run, report.

Without Ray (no workers, no cluster address) the same job runs its chunks in this process, so
several inputs get the same layout and job record with or without the ``ray`` extra.

Layout: with one input file, ``out`` is laid out as ``bmvseg segment`` lays it out
(``labels/``, ``overlay.mp4``, ``run.json``, ``summary.json`` last); with several, or a folder
or pattern (which may match more videos on a later ``--resume``), each video gets
``out/<name>/`` with that layout (names from :mod:`bmvseg.distributed.inputs`) and
``out/job.json`` lists every video's state (``pending``, ``failed`` with its one-line error, or
the finished states of :mod:`bmvseg.output.summary`) and what its summary says.

The parts: :mod:`.cluster` (Ray, placement), :mod:`.pool` (where chunks run, retries),
:mod:`.schedule` (keeping workers busy), :mod:`.records` (the folders and job.json).  Only the
driver writes; a killed driver loses at most the chunks in flight (``resume`` skips what it
can verify was finished).  A video whose chunk fails is marked failed and the others go on.
:func:`run_job` returns a :class:`JobResult`; the CLI prints it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bmvseg import progress as progress_report
from bmvseg.distributed.chunks import DEFAULT_CHUNK_FRAMES, plan_chunks
from bmvseg.distributed.cluster import connect, import_ray, start_workers, stop_ray
from bmvseg.distributed.inputs import assign_names, expand_inputs, names_a_set
from bmvseg.distributed.pool import LocalPool, Pool, RayPool
from bmvseg.distributed.records import Records, Video, finished_before
from bmvseg.distributed.schedule import schedule
from bmvseg.errors import BmvsegError
from bmvseg.output.rundir import check_claim, claim_output_dir, read_record
from bmvseg.output.summary import COMPLETE, DAMAGED, ENDED_EARLY
from bmvseg.run.iterate import open_video
from bmvseg.run.options import RunOptions
from bmvseg.run.to_dir import run_record

FAILED_EXIT = 2  # as a user error: at least one video could not be segmented
INTERRUPTED_EXIT = 130  # 128 + SIGINT, as the CLI reports any interrupted command


@dataclass
class JobResult:
    """How a job ended: every video's state, where the output is, and what interrupted it."""

    videos: list[Video]
    where: Path  # the single video's folder, or job.json
    interrupted: bool = False  # Ctrl-C before the job finished: rerun with --resume
    interrupted_after: bool = False  # Ctrl-C while Ray stopped, after every output was written

    def interrupt(self) -> None:
        """Ctrl-C: work was lost only if a video is still pending (else every output is in)."""
        self.interrupted = any(v.state == "pending" for v in self.videos)
        self.interrupted_after = not self.interrupted

    def named(self, state: str) -> list[Video]:
        return [v for v in self.videos if v.state == state]

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return INTERRUPTED_EXIT
        return FAILED_EXIT if self.named("failed") else 0

    def errors(self) -> list[str]:
        """One line per failed video, naming it."""
        out = []
        for v in self.named("failed"):
            error = v.error or "failed"
            out.append(error if str(v.input.path) in error else f"{v.input.path}: {error}")
        return out

    def closing_line(self) -> str:
        """The job in one line: complete, ended early and damaged videos named, frames, where."""
        n = len(self.videos)
        parts = [f"{len(self.named(COMPLETE))} of {n} videos complete"]
        for state, words in ((ENDED_EARLY, "ended early"), (DAMAGED, "with damaged frames")):
            names = [v.input.path.name for v in self.named(state)]
            if names:
                parts.append(f"{len(names)} {words} ({', '.join(names)})")
        if self.named("failed"):
            parts.append(f"{len(self.named('failed'))} failed")
        if self.interrupted:
            parts.append("interrupted (pass --resume to continue)")
        frames = sum(v.frames for v in self.videos)
        return f"{'; '.join(parts)}; {frames} frames; output in {self.where}"


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
    notice: Callable[[str], None] = lambda text: None,
) -> JobResult:
    """Segment every video ``inputs`` name into ``out``; returns how the job ended.

    Without ``workers`` and ``ray_address`` the chunks run in this process, one after another,
    and Ray is not imported.  Otherwise ``workers`` actors (default: as many as the cluster's
    CPUs allow at ``threads_per_worker`` torch threads each) run on the Ray cluster at
    ``ray_address``, or on one started here with ``workers * threads_per_worker`` CPUs; a Ray
    session already initialised in this process is used as it is.  ``progress`` False shows no
    progress, else it is shown as :mod:`bmvseg.progress` is set (videos done, frames);
    ``command`` is recorded in the summaries; ``notice`` receives
    one-line notices (stream choice, frame rate, motion source).  A user error that stops
    the whole job (no inputs, a bad checkpoint, an unreachable cluster, a folder that is not
    the job's) is raised as :class:`BmvsegError` before any folder is claimed; with one input
    file, so is that video's failure.
    """
    options = options or RunOptions()
    out = Path(out)
    if not isinstance(options.model, str):
        raise BmvsegError("a job's model must be a name or a file:function (workers build it)")
    plan_chunks(None, chunk_frames)  # refuses a bad chunk length before anything runs
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise BmvsegError(f"--workers must be >= 1, got {workers}")
    if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
        raise BmvsegError(f"threads per worker must be >= 1, got {threads_per_worker}")
    found = assign_names(expand_inputs(list(inputs), exclude=out))
    held = read_record(out)  # a job's folder keeps its layout whatever this run is given
    single = len(found) == 1 and not names_a_set(inputs) and (held or {}).get("kind") != "job"
    videos = [Video(v, out if single else out / v.name) for v in found]
    for v in videos:
        _probe(v, options, chunk_frames, single, notice)
    records = Records(out, videos, options, chunk_frames, single, overlay)
    records.info["command"] = command or "bmvseg.distributed.run_job (Python)"
    local = workers is None and ray_address is None
    records.info["runs_on"] = "this process" if local else ray_address or "Ray started here"
    _check_folders(records, resume=resume, overwrite=overwrite)
    todo = [v for v in videos if v.state == "pending"]
    result = JobResult(videos, out if single else out / "job.json")
    ray = None if local or not todo else import_ray()
    started = False
    t0 = time.perf_counter()
    try:
        pool: Pool | None = None
        if todo and local:
            pool = LocalPool(options)
        elif todo:
            started = connect(ray, ray_address, workers, threads_per_worker)
            records.info["ray_start_s"] = round(time.perf_counter() - t0, 3)
            pool = RayPool(ray, start_workers(ray, options, workers, threads_per_worker,
                                              sum(len(v.chunks) for v in todo)))  # fmt: skip
            records.info["threads_per_worker"] = threads_per_worker
        if pool is not None:
            records.info["workers"] = pool.slots
            records.info["workers_ready_s"] = round(time.perf_counter() - t0, 3)
        _claim(records, todo, resume=resume, overwrite=overwrite)
        if pool is not None:
            _run(pool, todo, records, options, progress)
    except KeyboardInterrupt:
        result.interrupt()
    finally:
        if started and stop_ray(ray) and not result.interrupted:
            result.interrupt()
    failed = [v for v in videos if v.state == "failed"]
    if single and failed and not result.interrupted:
        raise BmvsegError(failed[0].error or "failed")
    return result


def _probe(v: Video, options: RunOptions, size: int, single: bool,
           notice: Callable[[str], None]) -> None:  # fmt: skip
    """Frame count and identity, or the video's one-line error (raised for a single input)."""
    try:
        with open_video(v.input.path, options) as reader:
            v.frame_count = reader.frame_count
            v.rotation = reader.rotation
            for text in reader.notices:  # stream choice, frame rate, motion source
                notice(text)
        v.identity, v.about = run_record(v.input.path, options)  # as segment_to_dir's
    except (BmvsegError, OSError) as exc:
        error = str(exc)
        if not isinstance(exc, BmvsegError):
            error = f"{v.input.path}: {exc.strerror or exc}"
        if single:
            raise BmvsegError(error) from exc
        v.state, v.error = "failed", error
        return
    v.chunks = plan_chunks(v.frame_count, size, options.engine_config().schedule().stable)


def _check_folders(records: Records, *, resume: bool, overwrite: bool) -> None:
    """Every folder the job will write is checked before any is claimed; on resume, videos
    an earlier run finished (every file intact) are skipped."""
    flags = {"resume": resume, "overwrite": overwrite}
    inputs = [v.input.path for v in records.videos]
    if not records.single:
        check_claim(records.out, "job", _job_identity(records), inputs, **flags)
    for v in records.videos:
        if v.state != "pending":
            continue
        if not records.single and (v.dir.is_symlink() or v.dir.exists() and not v.dir.is_dir()):
            raise BmvsegError(f"{v.dir} is not a folder bmvseg made; refusing to write there")
        check_claim(v.dir, "chunked", v.identity, [v.input.path], **flags)
        if resume:
            summary = finished_before(v, records.overlay)
            if summary is not None:
                records.finished(v, summary)


def _job_identity(records: Records) -> dict:
    return {"options": records.options.identity()}


def _claim(records: Records, todo: list[Video], *, resume: bool, overwrite: bool) -> None:
    if not records.single:  # the job's folder, by the ownership rule (bmvseg.output)
        records.root = claim_output_dir(records.out, "job", _job_identity(records),
                                        inputs=[v.input.path for v in records.videos],
                                        resume=resume, overwrite=overwrite)  # fmt: skip
        if resume:
            records.keep_earlier()
    for v in todo:
        records.open(v, resume=resume, overwrite=overwrite)
    records.write_job()


def _run(pool: Pool, todo: list[Video], records: Records, options: RunOptions,
         progress: bool | None) -> None:  # fmt: skip
    known = all(v.frame_count for v in todo)
    left = sum(v.frame_count or 0 for v in todo) - sum(
        st["frames"] for v in todo for st in v.done.values()
    )
    bar = progress_report.bar(total=left if known else None, unit="frame",
                              desc=f"{options.scheme} k={options.interval}",
                              disable=progress is False)  # fmt: skip
    try:
        schedule(pool, todo, records, bar)
    finally:
        bar.close()
