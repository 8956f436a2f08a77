"""``bmvseg segment``: label every frame of a video with one scheme and write the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from bmvseg.cli.options import add_engine_arguments, add_scheme_arguments, run_options
from bmvseg.output.rundir import read_record
from bmvseg.run import segment_to_dir


def register(sub: argparse._SubParsersAction) -> None:
    """The ``segment`` subcommand's arguments."""
    p = sub.add_parser(
        "segment",
        help="segment every frame of a video",
        description="Segment a video, running the feature network only on keyframes. Writes "
        "OUTDIR/labels/NNNNNN.png (uint8 class ids), OUTDIR/overlay.mp4 and OUTDIR/summary.json "
        "(written last; says whether the run completed).",
    )
    p.add_argument("video", nargs="+",
                   help="input video(s): files, folders or glob patterns (any format FFmpeg "
                   "decodes); several make a job with one folder per video and OUTDIR/job.json")
    p.add_argument("-o", "--output", required=True, help="output directory")
    add_scheme_arguments(p)
    add_engine_arguments(p)
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--resume", action="store_true", help="continue a run that was interrupted")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier bmvseg output in OUTDIR (only its own files)")
    job = p.add_argument_group("many videos, many machines (Ray: pip install -e \".[ray]\")")
    job.add_argument("--workers", type=int, metavar="N",
                     help="run on a Ray cluster started here with N workers")
    job.add_argument("--ray-address", metavar="ADDR",
                     help="run on an existing Ray cluster (e.g. 10.0.0.1:6379 or auto)")
    job.add_argument("--chunk-frames", type=int, default=300, metavar="F",
                     help="cut long videos into chunks of about F frames (default %(default)s)")
    job.add_argument("--threads-per-worker", type=int, default=1, metavar="T",
                     help="torch threads (and CPUs) per worker (default %(default)s)")
    p.set_defaults(func=run)


def _notice(text: str) -> None:
    print(f"bmvseg: notice: {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    """Parse into RunOptions, run :func:`bmvseg.run.segment_to_dir`, print the result."""
    options = run_options(args)
    if _is_job(args):  # Ray is imported only here, and only with --workers / --ray-address
        return _run_job(args, options)
    (video,) = args.video
    bar = tqdm(unit="frame", desc=f"{args.scheme} k={args.keyframe_interval}",
               disable=None)  # fmt: skip  (only on a terminal: logs stay free of progress bars)

    def progress(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(1)

    try:
        summary = segment_to_dir(
            video, args.output, options, overlay=not args.no_overlay, resume=args.resume,
            overwrite=args.overwrite, notice=_notice, progress=progress, command=args.command_line,
        )  # fmt: skip
    finally:
        bar.close()
    ended = " (the stream ended early: it is truncated or corrupt)" if summary[
        "stream_ended_early"] else ""  # fmt: skip
    print(f"{summary['frames']} frames in {summary['wall_time_s']:.1f} s ({summary['fps']} fps)"
          f"{ended}; output in {args.output}")  # fmt: skip
    return 0


def _run_job(args: argparse.Namespace, options) -> int:
    """A job (bmvseg.distributed): its notices, failed videos and closing line, printed."""
    from bmvseg.distributed.job import run_job

    result = run_job(args.video, args.output, options=options, workers=args.workers,
                     ray_address=args.ray_address, threads_per_worker=args.threads_per_worker,
                     chunk_frames=args.chunk_frames, resume=args.resume,
                     overwrite=args.overwrite, overlay=not args.no_overlay,
                     command=args.command_line, notice=_notice)  # fmt: skip
    for line in result.errors():  # one line each, naming the video
        print(f"bmvseg segment: error: {line}", file=sys.stderr)
    print(result.closing_line(), flush=True)
    if result.interrupted:
        print("bmvseg segment: interrupted", file=sys.stderr)
    elif result.interrupted_after:
        print("bmvseg segment: interrupted while Ray was stopping, after every output was "
              "written: the job is complete", file=sys.stderr)  # fmt: skip
    return result.exit_status


def _is_job(args: argparse.Namespace) -> bool:
    """Several videos, a folder, a glob pattern, a cluster, or ``--resume`` of a job's
    output: a job (bmvseg.distributed)."""
    if len(args.video) > 1 or args.workers is not None or args.ray_address is not None:
        return True
    (spec,) = args.video
    if Path(spec).is_dir() or (not Path(spec).exists() and any(c in spec for c in "*?[")):
        return True
    record = read_record(Path(args.output)) if args.resume else None
    return record is not None and record["kind"] in ("chunked", "job")
