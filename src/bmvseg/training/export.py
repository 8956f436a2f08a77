"""Export a training run's ``best.pt`` as shipped weights, with its evaluation in the metadata.

``python -m bmvseg.training.export RUNDIR --root CAMVID [--dest PATH]`` evaluates ``best.pt`` on
CamVid ``test/`` and on ``val/`` (the labelled video: for reporting only, never for selection),
and writes an fp16 checkpoint (default ``bmvseg/weights/<model>.pt``) whose metadata carries the
training command, time, and per-class IoU / mIoU on both splits.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from bmvseg.data.registry import get_dataset
from bmvseg.errors import BmvsegError
from bmvseg.models.checkpoint import read_checkpoint, save_checkpoint
from bmvseg.models.registry import WEIGHTS_DIR, build_model
from bmvseg.training.evaluate import evaluate_model, iou_table

MAX_BYTES = 25 * 1024 * 1024


def export_run(
    run_dir: str | Path,
    root: str | Path,
    dest: str | Path | None = None,
    *,
    command: str | None = None,
) -> dict:
    """Evaluate ``run_dir/best.pt`` on test/ and val/ and write it to ``dest``; returns meta.

    ``command`` replaces the training command recorded in best.pt (e.g. to spell out a run that
    was resumed by a build that recorded only the last command).
    """
    best = Path(run_dir) / "best.pt"
    meta = dict(read_checkpoint(best)["meta"])
    if command:
        meta["command"] = command
    name = meta.get("model_name", "enet_lite")
    model = build_model(name, weights=best).to(memory_format=torch.channels_last)
    results, tables = {}, []
    for split in ("test", "val"):
        ds = get_dataset(meta.get("dataset", "camvid"), root, split)
        cm = evaluate_model(model, (ds[i] for i in range(len(ds))), progress=True, total=len(ds))
        results[split] = {
            "images": len(ds),
            "iou": [None if math.isnan(v) else float(v) for v in cm.iou()],
            "miou": cm.miou(),
            "pixel_accuracy": cm.pixel_accuracy(),
        }
        tables.append(f"### {split}/ ({len(ds)} images)\n\n{iou_table(model.class_names, cm)}\n")
        print(tables[-1])
    history_path = Path(run_dir) / "history.json"
    if history_path.is_file():
        history = json.loads(history_path.read_text())
        meta["epochs_run"] = len(history)
        meta["training_time_s_total"] = history[-1]["elapsed_s"] if history else None
    meta["evaluation"] = results
    dest = Path(dest) if dest else WEIGHTS_DIR / f"{name}.pt"
    save_checkpoint(dest, model, meta)
    if dest.stat().st_size > MAX_BYTES:
        raise BmvsegError(f"{dest} is {dest.stat().st_size} bytes, over the 25 MB limit")
    print(f"wrote {dest} ({dest.stat().st_size / 1e6:.1f} MB)")
    minutes = (meta.get("training_time_s_total") or 0) / 60
    (Path(run_dir) / "export.md").write_text(
        f"Command: `{meta.get('command')}`\n\nBest epoch {meta.get('epoch')} of "
        f"{meta.get('epochs_run')}, {minutes:.1f} min of training.\n\n" + "\n".join(tables)
    )
    return meta


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: export a training run's best checkpoint as shipped weights."""
    p = argparse.ArgumentParser(prog="python -m bmvseg.training.export", description=__doc__)
    p.add_argument("run_dir")
    p.add_argument("--root", required=True, help="CamVid root (with test/ and val/)")
    p.add_argument("--dest", help="output file (default: the package's weights/<model>.pt)")
    p.add_argument("--command", help="training command to record instead of best.pt's")
    args = p.parse_args(argv)
    try:
        export_run(args.run_dir, args.root, args.dest, command=args.command)
    except BmvsegError as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
