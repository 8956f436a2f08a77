"""``bmvseg segment``: label every frame of a video with one scheme and write the results."""

from __future__ import annotations

import argparse
import sys
import time
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
from bmvseg.output.live import delay_line
from bmvseg.output.rundir import read_record
from bmvseg.run import segment_to_dir
from bmvseg.run.live import LiveOptions, live_input, segment_live_to_dir, stop_on_signals
from bmvseg.video.inputs import describe
from bmvseg.video.live_source import is_live

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
                   "decodes); several make a job with one folder per video and OUTDIR/job.json. "
                   "One live input: - (standard input), a URL (tcp://, udp://, http(s)://, "
                   "rtsp://, rtmp://, srt://) or a device (/dev/video0 with --format v4l2) "
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
    live = p.add_argument_group("live input (-, a URL, a device: read once, as it arrives)")
    live.add_argument("--format", metavar="FMT",
                      help="the input's demuxer where FFmpeg cannot guess it (v4l2, mpegts, ...; "
                      "default: FFmpeg guesses)")
    live.add_argument("--timeout", type=float, metavar="S",
                      help="seconds to wait for the stream to answer, and for each read "
                      "(default: 10)")
    live.add_argument("--reconnect", type=int, default=0, metavar="N",
                      help="open a URL again when its stream ends, up to N times "
                      "(default: %(default)s)")
    live.add_argument("--keep-up", action="store_true",
                      help="when frames arrive faster than they are segmented, lengthen the "
                      "keyframe interval (up to --max-interval, default 2N) rather than fall "
                      "behind; frames are dropped, counted, only beyond that (default: off)")
    live.add_argument("--overlay-url", metavar="URL",
                      help="send the overlay (MPEG-TS) to this URL (default: OUTDIR/overlay.ts)")
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
    if len(args.video) == 1 and live_input(args.video[0]):
        return _run_live(args, options)
    _refuse_live_flags(args)
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


_LIVE_FLAGS = {"format": "--format", "timeout": "--timeout", "reconnect": "--reconnect",
               "keep_up": "--keep-up", "overlay_url": "--overlay-url"}  # fmt: skip


def _refuse_live_flags(args: argparse.Namespace) -> None:
    given = [flag for dest, flag in _LIVE_FLAGS.items() if getattr(args, dest)]
    if given:
        raise BmvsegError(f"{', '.join(given)}: only for one live input (-, a URL, a device), "
                          f"not for video files")  # fmt: skip


def _run_live(args: argparse.Namespace, options) -> int:
    """One live input: runs until its stream ends, Ctrl-C or SIGTERM (exit 130/143)."""
    (video,) = args.video
    if args.resume:
        raise BmvsegError(f"--resume: {describe(video)} is a live input, read once: its frames "
                          "are gone, so there is nothing to continue from (start a new run, "
                          "--overwrite)")  # fmt: skip
    if args.workers is not None or args.ray_address is not None:
        raise BmvsegError("a live input is segmented here, as it arrives: drop --workers and "
                          "--ray-address")  # fmt: skip
    if args.reconnect and (not is_live(video) or video == "-"):
        raise BmvsegError(f"--reconnect: {video} cannot be opened again (only URLs can)")
    live = LiveOptions(timeout=args.timeout, format=args.format, reconnect=args.reconnect,
                       keep_up=args.keep_up, overlay_url=args.overlay_url)  # fmt: skip
    bar = progress.bar(unit="frame", desc=f"{args.scheme} k={args.interval} (live)")
    shown = [0.0]

    def advance(done: int, status: str) -> None:
        bar.update(1)
        if time.monotonic() - shown[0] >= 1.0:  # the delay line, once a second
            shown[0] = time.monotonic()
            bar.set_postfix_str(status)

    with stop_on_signals() as stop:
        try:
            summary = segment_live_to_dir(
                video, args.output, options, live, overlay=not args.no_overlay,
                overwrite=args.overwrite, stop=stop, notice=lambda text: notice(args, text),
                progress=advance,
                command=args.command_line,
            )  # fmt: skip
        finally:
            bar.close()
    dropped = f", {summary['frames_dropped']} dropped" if summary["frames_dropped"] else ""
    print(f"{summary['frames']} frames ({summary['state']}{dropped}) in "
          f"{summary['wall_time_s']:.1f} s; {delay_line(summary['latency_ms'])}; "
          f"output in {args.output}", flush=True)  # fmt: skip
    if stop.signum is not None:
        print(f"bmvseg segment: stopped by {stop.name}; summary.json records the "
              f"{summary['frames']} frames done", file=sys.stderr)  # fmt: skip
        return 128 + stop.signum
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
