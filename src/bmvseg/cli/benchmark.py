"""``bmvseg benchmark``: the paper's accuracy-throughput evidence on labelled video."""

from __future__ import annotations

import argparse

from bmvseg.cli.options import (
    add_engine_arguments,
    add_progress_arguments,
    add_threads_argument,
    notice,
    run_options,
    set_threads,
)
from bmvseg.errors import BmvsegError
from bmvseg.evaluation.benchmark import DATASETS, BenchmarkSpec, run_benchmark
from bmvseg.schemes.registry import SCHEMES, reference_scheme

MAX_INTERVAL = 1000  # a keyframe every 1000 frames is already past any useful trade-off


def parse_intervals(text: str) -> list[int]:
    """'1-10', '1,2,5' or '1-4,8' -> sorted interval list (each in 1..MAX_INTERVAL)."""
    out: set[int] = set()
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            lo, hi = int(a), int(b or a)
            if not 1 <= lo <= hi <= MAX_INTERVAL:
                raise BmvsegError(
                    f"bad --intervals {text!r}: intervals are 1..{MAX_INTERVAL}, ranges ascending"
                )
            out.update(range(lo, hi + 1))
    except ValueError:
        raise BmvsegError(f"bad --intervals {text!r}: use e.g. 1-10 or 1,2,5") from None
    if not out:
        raise BmvsegError(f"bad --intervals {text!r}: use e.g. 1-10 or 1,2,5")
    return sorted(out)


EXAMPLES = """examples:
  bmvseg benchmark --dataset camvid --root path/to/camvid -o results/camvid
  bmvseg benchmark my_video.mp4 --reference per-frame -o results/mine --intervals 1,5,10
  bmvseg benchmark --quick --dataset synthetic -o results/quick --no-throughput
"""


def register(sub: argparse._SubParsersAction) -> None:
    """The ``benchmark`` subcommand's arguments."""
    p = sub.add_parser(
        "benchmark",
        help="accuracy vs throughput of every scheme and keyframe interval",
        description="Measure mIoU (avg over offsets and worst offset) and throughput of every "
        "scheme at every keyframe interval, on a labelled dataset video or, with --reference "
        "per-frame, on your own unlabelled VIDEO (fidelity to the per-frame model, not accuracy).",
        epilog=EXAMPLES,
    )
    p.add_argument("video", nargs="?",
                   help="your own video, with --reference per-frame (default: none; "
                   "--dataset instead)")  # fmt: skip
    p.add_argument("--dataset", choices=DATASETS,
                   help="labelled video dataset (default: none; VIDEO instead)")
    p.add_argument("--root", help="dataset root directory (default: none; needed by camvid "
                   "and cityscapes)")  # fmt: skip
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                   help="output directory (required)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier benchmark output in OUTDIR (only its own files)")
    p.add_argument("--schemes", default=",".join(SCHEMES), help="comma list (default: all)")
    p.add_argument("--fusions", default="avg,max,conv",
                   help="inter-BMV fusions (conv only where fusion weights exist)")  # fmt: skip
    p.add_argument("--intervals", default="1-10",
                   help="keyframe intervals, e.g. 1-10 or 1,2,5")  # fmt: skip
    p.add_argument("--reference", choices=(reference_scheme(),),
                   help="score against the per-frame model's labels (default: against the "
                   "dataset's ground truth)")  # fmt: skip
    p.add_argument("--quick", action="store_true",
                   help="a few intervals on a small generated clip (for CI)")  # fmt: skip
    p.add_argument("--max-frames", type=int, metavar="N",
                   help="use only the first N frames of each video (default: all)")
    p.add_argument("--limit-clips", type=int, metavar="N",
                   help="Cityscapes: use only the first N snippets (default: all)")
    p.add_argument("--no-throughput", action="store_true", help="skip the timing runs")
    add_engine_arguments(p, model_default=None)
    add_threads_argument(p)
    add_progress_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse into a BenchmarkSpec, run it, print the table."""
    set_threads(args)
    spec = BenchmarkSpec(
        output=args.output,
        options=run_options(args, model=args.model or ""),
        video=args.video,
        dataset=args.dataset,
        root=args.root,
        schemes=[s.strip() for s in args.schemes.split(",") if s.strip()],
        fusions=[f.strip() for f in args.fusions.split(",") if f.strip()],
        intervals=parse_intervals(args.intervals),
        reference=args.reference,
        quick=args.quick,
        max_frames=args.max_frames,
        limit_clips=args.limit_clips,
        throughput=not args.no_throughput,
        overwrite=args.overwrite,
        command=args.command_line,
    )
    table, notes = run_benchmark(spec)
    print(table)
    for n in notes:
        notice(args, n)
    print(f"results in {args.output}")
    return 0
