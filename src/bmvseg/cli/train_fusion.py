"""``bmvseg train-fusion``: learn inter-BMV's 1x1 conv fusion for a frozen model."""

from __future__ import annotations

import argparse

import torch

from bmvseg.cli.options import add_progress_arguments, add_threads_argument, set_threads
from bmvseg.data.classes import CAMVID_CLASSES
from bmvseg.errors import BmvsegError
from bmvseg.models.registry import build_model, fusion_weights_home
from bmvseg.training.fusion import train_fusion, training_windows


def register(sub: argparse._SubParsersAction) -> None:
    """The ``train-fusion`` subcommand's arguments."""
    p = sub.add_parser(
        "train-fusion",
        help="train inter-BMV's conv fusion (feature and task networks frozen)",
        description="Train the 1x1 conv fusion of inter-BMV on clips with real codec motion "
        "(paper Sec. 4.0.3). CamVid: clips made from train/ stills by random camera motion; "
        "synthetic: generated street clips.",
        epilog="examples:\n  bmvseg train-fusion --root path/to/camvid --model enet_lite\n"
        "  bmvseg train-fusion --dataset synthetic --model synthetic_demo -o demo.fusion.pt\n",
    )
    p.add_argument("--dataset", choices=("camvid", "synthetic"), default="camvid",
                   help="where the training windows come from")
    p.add_argument("--root", help="dataset root (default: none; --dataset camvid needs it)")
    p.add_argument("--model", default="enet_lite", help="model name")
    p.add_argument("--weights", default="default",
                   help="'default' (shipped) or a checkpoint path")
    p.add_argument("-o", "--output",
                   help="output file (default: beside the model's weights, <stem>.fusion.pt)")
    p.add_argument("--steps", type=int, default=300, help="training steps")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--held-out", type=int, default=24, help="held-out windows for the report")
    p.add_argument("--scale", type=float, default=0.5, help="CamVid still scale")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    add_threads_argument(p)
    add_progress_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train inter-BMV's conv fusion for a frozen model and save it beside its weights."""
    if args.dataset == "camvid" and not args.root:
        raise BmvsegError("--dataset camvid needs --root")
    set_threads(args)
    torch.manual_seed(args.seed)
    model = build_model(args.model, weights=args.weights)
    if model.num_classes != len(CAMVID_CLASSES):  # both datasets label CamVid's 11 classes
        raise BmvsegError(
            f"{args.model} predicts {model.num_classes} classes; the {args.dataset} windows are "
            f"labelled with CamVid's {len(CAMVID_CLASSES)} (declare a class_map on the model)"
        )
    out = args.output or fusion_weights_home(args.model, args.weights)
    if out is None:
        raise BmvsegError(
            f"no place beside the weights of {args.model!r} ({args.weights}) to keep its fusion "
            "weights: give -o FILE"
        )
    windows, held_out = training_windows(args.dataset, args.root, seed=args.seed,
                                         scale=args.scale, held_out=args.held_out)  # fmt: skip
    meta = {"command": args.command_line, "model": args.model, "dataset": args.dataset}
    result = train_fusion(model, windows, held_out, steps=args.steps, lr=args.lr, out=str(out),
                          meta=meta)  # fmt: skip
    print(f"conv fusion saved to {out}: {result}")
    return 0
