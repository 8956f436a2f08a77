"""``bmvseg segment``: label every frame of a video with one scheme and write the results."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bmvseg import progress
from bmvseg.cli.options import (
    add_engine_arguments,
    add_progress_arguments,
    add_scheme_arguments,
    add_threads_argument,
    notice,
    run_options,
    set_threads,
)
from bmvseg.errors import BmvsegError
from bmvseg.output.rundir import read_record
from bmvseg.run import segment_to_dir

EXAMPLES = """examples:
  bmvseg segment video.mp4 -o out/                        # inter-BMV, keyframe every 5 frames
  bmvseg segment video.mp4 -o out/ --scheme prop-bmv -k 10
  bmvseg segment video.mp4 -o out/ --start 1:30 --end 2:00  # only these 30 seconds
  bmvseg segment video.mp4 -o out/ --max-frames 100 --no-overlay
  bmvseg segment footage/ -o out/                          # every video of a folder (a job)
  bmvseg segment video.mp4 -o out/ --resume                # continue a killed run
"""


def register(sub: argparse._SubParsersAction) -> None:
    """The ``segment`` subcommand's arguments."""
    p = sub.add_parser(
        "segment",
        help="segment every frame of a video",
        description="Segment a video, running the feature network only on keyframes. Writes "
        "OUTDIR/labels/NNNNNN.png (uint8 class ids), OUTDIR/overlay.mp4 and OUTDIR/summary.json "
        "(written last; says whether the run completed).",
        epilog=EXAMPLES,
    )
    p.add_argument("video", nargs="+",
                   help="input video(s): files, folders or glob patterns (any format FFmpeg "
                   "decodes); several make a job with one folder per video and OUTDIR/job.json "
                   "(required)")  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output directory (required)")
    add_scheme_arguments(p)
    add_engine_arguments(p)
    add_threads_argument(p)
    r = p.add_argument_group("frame range (one video; frame numbers, or times: 90.5, 90s, 1:30, "
                             "1:02:03.5)")  # fmt: skip
    r.add_argument("--start", metavar="POS",
                   help="first frame to label (default: the first frame)")
    r.add_argument("--end", metavar="POS",
                   help="label frames before this one (default: to the last frame)")
    r.add_argument("--max-frames", type=int, metavar="N",
                   help="label at most N frames from --start (default: no limit)")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--resume", action="store_true", help="continue a run that was interrupted")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier bmvseg output in OUTDIR (only its own files)")
    job = p.add_argument_group("many videos, many machines (Ray: pip install -e \".[ray]\")")
    job.add_argument("--workers", type=int, metavar="N",
                     help="run on a Ray cluster started here with N workers (default: no Ray; "
                     "in this process)")  # fmt: skip
    job.add_argument("--ray-address", metavar="ADDR",
                     help="run on an existing Ray cluster, e.g. 10.0.0.1:6379 or auto "
                     "(default: no cluster)")  # fmt: skip
    job.add_argument("--chunk-frames", type=int, default=300, metavar="F",
                     help="cut long videos into chunks of about F frames (default: %(default)s)")
    job.add_argument("--threads-per-worker", type=int, default=1, metavar="T",
                     help="torch threads (and CPUs) per worker (default: %(default)s)")
    add_progress_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse into RunOptions, run :func:`bmvseg.run.segment_to_dir`, print the result."""
    options = run_options(args)
    set_threads(args)
    if _is_job(args):  # Ray is imported only here, and only with --workers / --ray-address
        if (args.start, args.end, args.max_frames) != (None, None, None):
            raise BmvsegError("--start, --end and --max-frames take one video, not a job")
        return _run_job(args, options)
    (video,) = args.video
    bar = progress.bar(unit="frame", desc=f"{args.scheme} k={args.interval}")

    def advance(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(1)

    try:
        summary = segment_to_dir(
            video, args.output, options, overlay=not args.no_overlay, resume=args.resume,
            overwrite=args.overwrite, notice=lambda text: notice(args, text), progress=advance,
            command=args.command_line, start=args.start, end=args.end,
            max_frames=args.max_frames,
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
                     command=args.command_line,
                     notice=lambda text: notice(args, text))  # fmt: skip
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
