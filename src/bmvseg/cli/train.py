"""``bmvseg train``: train a single-frame segmentation model (see :mod:`bmvseg.training.train`)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from bmvseg.cli.options import add_progress_arguments, add_threads_argument, configure_progress
from bmvseg.errors import BmvsegError


def _pair(text: str) -> tuple[int, int]:
    """'256' -> (256, 256); '240x320' -> (240, 320) as (H, W)."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}")
    return parts[0], parts[1]


def register(sub: argparse._SubParsersAction) -> None:
    """The ``train`` subcommand's arguments."""
    p = sub.add_parser(
        "train",
        help="train a single-frame segmentation model",
        description="Train a single-frame segmentation model on a dataset's stills (the "
        "feature and task networks every scheme uses), with held-out mIoU every epoch; writes "
        "last.pt, best.pt, history.json and report.md to the run directory.",
        epilog="examples:\n"
        "  bmvseg train --dataset camvid --root path/to/camvid --model enet_lite -o runs/camvid\n"
        "  bmvseg train --root path/to/camvid -o runs/camvid --resume\n",
    )
    p.add_argument("--dataset", default="camvid", help="dataset name (bmvseg.data.registry)")
    p.add_argument("--root", help="dataset root directory (default: none; camvid and "
                   "cityscapes need it)")  # fmt: skip
    p.add_argument("--model", default="enet_lite", help="model name (bmvseg.models.registry)")
    p.add_argument("-o", "--output", dest="out", metavar="OUTDIR",
                   help="run directory: checkpoints, report (required)")
    p.add_argument("--out", dest="out", help=argparse.SUPPRESS)  # the earlier name
    p.add_argument("--epochs", type=int,
                   help="epochs (default: 300; the time limit may end it sooner)")
    p.add_argument("--batch-size", type=int, default=8, help="images per step")
    p.add_argument("--crop", type=_pair, default=(256, 256),
                   help="crop size N or HxW (default: 256x256)")
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), metavar=("MIN", "MAX"),
                   help="random rescale range (default: 0.5 2.0)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-2, help="AdamW weight decay")
    p.add_argument("--time-limit-min", type=float, metavar="M",
                   help="stop (and end the LR schedule) after M min (default: no limit)")
    p.add_argument("--val-split", choices=("test", "trainslice"), default="test",
                   help="held-out split for per-epoch mIoU (never CamVid val/)")
    p.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs")
    p.add_argument("--workers", type=int, default=1, help="data-loading processes")
    add_threads_argument(p, default=1)
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--max-train-images", type=int, help=argparse.SUPPRESS)
    p.add_argument("--max-val-images", type=int, help=argparse.SUPPRESS)
    p.add_argument("--resume", action="store_true", help="continue from OUTDIR/last.pt")
    add_progress_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Parse into a TrainConfig and train."""
    from bmvseg.training.train import TrainConfig, train

    if not args.out:
        raise BmvsegError("-o/--output (the run directory) is required")
    overrides = {
        k: v
        for k, v in (("epochs", args.epochs), ("time_limit_min", args.time_limit_min))
        if v is not None
    }
    if args.epochs is None:
        args.epochs = 300
    if args.epochs <= 0 or args.batch_size <= 0 or args.lr <= 0:
        raise BmvsegError("--epochs, --batch-size and --lr must be positive")
    # Every option named like a TrainConfig field sets it ("command" is the subcommand's name).
    given = {f.name for f in fields(TrainConfig)} & vars(args).keys() - {"command", "scale"}
    cfg = TrainConfig(
        **{name: getattr(args, name) for name in given},
        scale=tuple(args.scale),
        command=getattr(args, "command_line", None) or "bmvseg " + " ".join(sys.argv[1:]),
    )
    train(cfg, resume=args.resume, progress=not (args.no_progress or args.quiet),
          overrides=overrides)  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bmvseg.cli.train ...`` = ``bmvseg train ...`` (needs no other subcommand)."""
    from bmvseg.errors import BmvsegError

    parser = argparse.ArgumentParser(prog="bmvseg")
    register(parser.add_subparsers(dest="command", required=True))
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(["train", *argv])
    args.command_line = "bmvseg train " + " ".join(argv)
    configure_progress(args)
    try:
        return run(args)
    except BmvsegError as exc:
        print(f"bmvseg train: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
