"""``bmvseg evaluate``: per-image mIoU of a single-frame model on a dataset split."""

from __future__ import annotations

import argparse
import json

from bmvseg.cli.options import add_progress_arguments, add_threads_argument, set_threads


def register(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` subcommand's arguments."""
    p = sub.add_parser(
        "evaluate",
        help="per-image mIoU of a model on a dataset split",
        description="Score a single-frame model on every image of a dataset split (no video, "
        "no propagation) and print per-class IoU: the ceiling every scheme is measured against.",
        epilog="examples:\n  bmvseg evaluate --dataset camvid --root path/to/camvid --split test\n"
        "  bmvseg evaluate --root path/to/camvid --weights runs/camvid/best.pt --json iou.json\n",
    )
    p.add_argument("--dataset", default="camvid", help="dataset name (bmvseg.data.registry)")
    p.add_argument("--root", help="dataset root directory (default: none; camvid and "
                   "cityscapes need it)")  # fmt: skip
    p.add_argument("--split", default="test", help="dataset split")
    p.add_argument("--model", default="enet_lite", help="model name")
    p.add_argument("--weights", default="default",
                   help="'default' (shipped), a checkpoint path, or 'none'")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    add_threads_argument(p, default=2)
    p.add_argument("--json", metavar="PATH",
                   help="also write per-class IoU as JSON here (default: not written)")
    add_progress_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score a single-frame model on a dataset split and print per-class IoU."""
    import torch

    from bmvseg.data.registry import get_dataset
    from bmvseg.devices import resolve_device
    from bmvseg.models.registry import build_model
    from bmvseg.training.evaluate import evaluate_model, iou_table

    set_threads(args)
    device = resolve_device(args.device)  # an unknown device is refused before any loading
    ds = get_dataset(args.dataset, args.root, args.split)
    model = build_model(args.model, weights=args.weights, num_classes=len(ds.class_names))
    model = model.to(device, memory_format=torch.channels_last)
    cm = evaluate_model(model, (ds[i] for i in range(len(ds))), progress=True, total=len(ds))
    print(f"{args.model} on {args.dataset} {args.split} ({len(ds)} images)")
    print(iou_table(model.class_names, cm))
    if args.json:
        iou = [None if v != v else float(v) for v in cm.iou()]
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "class_names": list(model.class_names),
                    "iou": iou,
                    "miou": cm.miou(),
                    "pixel_accuracy": cm.pixel_accuracy(),
                    "split": args.split,
                },
                fh,
                indent=1,
            )
    return 0
