"""``bmvseg demo``: the whole idea on a generated street clip, no dataset or network needed
(the work is :func:`bmvseg.evaluation.demo.run_demo`)."""

from __future__ import annotations

import argparse

from bmvseg.cli.options import (
    add_interval_argument,
    add_progress_arguments,
    add_threads_argument,
    set_threads,
)
from bmvseg.errors import BmvsegError
from bmvseg.evaluation.demo import run_demo


def register(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` subcommand's arguments."""
    p = sub.add_parser(
        "demo",
        help="segment a generated street clip and show speed and accuracy (no data needed)",
        description="Render a street clip with exact labels, run per-frame and the propagation "
        "schemes at keyframe intervals 1, 3, 5, 10, and write side_by_side.mp4, "
        "accuracy_vs_throughput.png and report.md to the output directory.",
        epilog="examples:\n  bmvseg demo\n  bmvseg demo -o my-demo --frames 60 -k 10 --overwrite\n",
    )
    p.add_argument("-o", "--output", default="bmvseg-demo", metavar="OUTDIR",
                   help="output directory")
    p.add_argument("--seed", type=int, default=200007,
                   help="scene seed; 200000+ are test-split streets never trained on")
    p.add_argument("--frames", type=int, default=90, help="clip length")
    p.add_argument("--size", default="240x320", help="HxW")
    add_interval_argument(p, 5, "keyframe interval of inter-BMV in side_by_side.mp4 (the "
                          "table always has 1, 3, 5, 10)")  # fmt: skip
    p.add_argument("--model", default="synthetic_demo", help="model")
    p.add_argument("--weights", default="default", help="checkpoint path, 'default' or 'none'")
    add_threads_argument(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier demo output in the directory (only its own files)")
    add_progress_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo into the output directory and print its report."""
    try:
        h, w = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        raise BmvsegError(f"bad --size {args.size!r}: use HxW, e.g. 240x320") from None
    set_threads(args)
    md = run_demo(args.output, seed=args.seed, frames=args.frames, height=h, width=w,
                  interval=args.interval, model=args.model,
                  weights=None if args.weights == "none" else args.weights,
                  overwrite=args.overwrite,
                  say=lambda text: None if args.quiet else print(text, flush=True))  # fmt: skip
    print(md)
    print(f"side-by-side video, plot and report in {args.output}/")
    return 0
