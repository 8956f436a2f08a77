"""``bmvseg train-fusion``: learn inter-BMV's 1x1 conv fusion for a frozen model."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from bmvseg.data.registry import get_dataset
from bmvseg.errors import BmvsegError
from bmvseg.models.registry import build_model
from bmvseg.schemes.segment import fusion_weights_path
from bmvseg.training.fusion import clip_windows, still_windows, train_fusion


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-fusion",
        help="train inter-BMV's conv fusion (feature and task networks frozen)",
        description="Train the 1x1 conv fusion of inter-BMV on clips with real codec motion "
        "(paper Sec. 4.0.3). CamVid: clips made from train/ stills by random camera motion; "
        "synthetic: generated street clips.",
    )
    p.add_argument("--dataset", choices=("camvid", "synthetic"), default="camvid")
    p.add_argument("--root", help="dataset root (CamVid)")
    p.add_argument("--model", default="enet_lite")
    p.add_argument("--weights", default="default")
    p.add_argument("-o", "--output", help="output file (default: the model's shipped fusion file)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--held-out", type=int, default=24, help="held-out windows for the report")
    p.add_argument("--scale", type=float, default=0.5, help="CamVid still scale (default 0.5)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.dataset == "camvid" and not args.root:
        raise BmvsegError("--dataset camvid needs --root")
    torch.manual_seed(args.seed)
    model = build_model(args.model, weights=args.weights)
    rng = np.random.default_rng(args.seed)
    if args.dataset == "camvid":
        train, test = (get_dataset("camvid", args.root, s) for s in ("train", "test"))
        windows = still_windows(train, rng, scale=args.scale)
        held = still_windows(test, np.random.default_rng(1), scale=args.scale)
    else:
        windows = clip_windows(_synthetic_clips("train", 6), rng)
        held = clip_windows(_synthetic_clips("test", 2), np.random.default_rng(1))
    held_out = [next(held) for _ in range(args.held_out)]
    out = args.output or str(fusion_weights_path(args.model))
    meta = {"command": "bmvseg " + " ".join(sys.argv[1:]), "model": args.model,
            "dataset": args.dataset}  # fmt: skip
    result = train_fusion(model, windows, held_out, steps=args.steps, lr=args.lr, out=out,
                          meta=meta)  # fmt: skip
    print(f"conv fusion saved to {out}: {result}")
    return 0


def _synthetic_clips(split: str, count: int, frames: int = 30):
    from bmvseg.data.synthetic.clip import render_clip
    from bmvseg.data.synthetic.dataset import split_seed

    clips = []
    for i in range(count):
        clip = render_clip(split_seed(split, i), 240, 320, frames)
        fr = [clip.frame(j, flow=False) for j in range(frames)]
        clips.append(([f.rgb for f in fr], [f.labels for f in fr]))
    return clips
