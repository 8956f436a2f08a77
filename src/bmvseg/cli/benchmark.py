"""``bmvseg benchmark``: the paper's accuracy-throughput evidence on labelled video."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

import bmvseg
from bmvseg.cli.segment import add_engine_arguments
from bmvseg.errors import BmvsegError
from bmvseg.evaluation import clips as clipsmod
from bmvseg.evaluation import report, throughput
from bmvseg.evaluation.sweep import AccuracySweep, Variant
from bmvseg.models.registry import build_model
from bmvseg.schemes.engine import SCHEMES
from bmvseg.schemes.fusion import FUSIONS
from bmvseg.schemes.segment import fusion_weights_path, load_conv_fusion

DATASETS = ("camvid", "cityscapes", "synthetic")
QUICK = {"intervals": [1, 2, 4], "frames": 24, "size": (120, 160)}


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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark",
        help="accuracy vs throughput of every scheme and keyframe interval",
        description="Measure mIoU (avg over offsets and worst offset) and throughput of every "
        "scheme at every keyframe interval, on a labelled dataset video or, with --reference "
        "per-frame, on your own unlabelled VIDEO (fidelity to the per-frame model, not accuracy).",
    )
    p.add_argument("video", nargs="?", help="your own video (with --reference per-frame)")
    p.add_argument("--dataset", choices=DATASETS, help="labelled video dataset")
    p.add_argument("--root", help="dataset root directory")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--schemes", default=",".join(SCHEMES), help="comma list (default: all)")
    p.add_argument("--fusions", default="avg,max,conv",
                   help="inter-BMV fusions (conv only where fusion weights exist)")  # fmt: skip
    p.add_argument("--intervals", default="1-10", help="keyframe intervals, e.g. 1-10 or 1,2,5")
    p.add_argument("--reference", choices=("per-frame",), help="score against per-frame labels")
    p.add_argument("--quick", action="store_true",
                   help="a few intervals on a small generated clip (for CI)")  # fmt: skip
    p.add_argument("--max-frames", type=int, help="use only the first N frames of each video")
    p.add_argument("--limit-clips", type=int, help="Cityscapes: use only the first N snippets")
    p.add_argument("--no-throughput", action="store_true", help="skip the timing runs")
    add_engine_arguments(p)
    p.set_defaults(func=run, model=None)


def run(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    if args.quick and args.dataset is None and args.video is None:
        args.dataset = "synthetic"
    if (args.video is None) == (args.dataset is None):
        raise BmvsegError("give either a VIDEO (with --reference per-frame) or --dataset")
    if args.video is not None and args.reference is None:
        raise BmvsegError("an unlabelled VIDEO needs --reference per-frame")
    if args.dataset in ("camvid", "cityscapes") and not args.root:
        raise BmvsegError(f"--dataset {args.dataset} needs --root")
    intervals = QUICK["intervals"] if args.quick else parse_intervals(args.intervals)
    if args.max_frames is not None and args.max_frames < 2:
        raise BmvsegError(f"--max-frames must be >= 2, got {args.max_frames}")
    max_frames = args.max_frames or (QUICK["frames"] if args.quick else None)
    schemes = [s.strip() for s in args.schemes.split(",") if s.strip()]
    for s in schemes:
        if s not in SCHEMES:
            raise BmvsegError(f"unknown scheme {s!r}; choose from {', '.join(SCHEMES)}")
    model_name = args.model or ("synthetic_demo" if args.dataset == "synthetic" else "enet_lite")
    weights = None if args.weights == "none" else args.weights
    model = build_model(model_name, weights=weights, device=args.device, split=args.split)
    model = model.to(memory_format=torch.channels_last)

    fusions, notes = [], []
    for f in (x.strip() for x in args.fusions.split(",") if x.strip()):
        if f not in FUSIONS:
            raise BmvsegError(f"unknown fusion {f!r}; choose from {', '.join(FUSIONS)}")
        fusions.append(f)
    conv = None
    if "inter-bmv" in schemes and "conv" in fusions:
        path = Path(args.fusion_weights or fusion_weights_path(model_name))
        if path.is_file():
            conv = load_conv_fusion(model, path)
        else:
            fusions.remove("conv")
            notes.append(f"conv fusion skipped: no fusion weights at {path}")
    variants = [Variant(s) for s in schemes if s != "inter-bmv"]
    variants = [Variant("per-frame")] + [v for v in variants if v.scheme != "per-frame"]
    if "inter-bmv" in schemes:
        variants += [Variant("inter-bmv", f) for f in fusions]

    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BmvsegError(f"cannot create {out}: {exc.strerror}") from None
    sweep = AccuracySweep(model, variants, intervals, conv=conv, flow_preset=args.flow_preset,
                          accumulate=args.accumulate, label_stride=args.label_stride)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bmvseg-bench-") as tmp:
        clips = list(_clips(args, Path(tmp)))
        for clip in clips:
            sweep.add_clip(clip, max_frames)
        if sweep.frames_scored == 0:
            raise BmvsegError("no labelled frames to score")
        kw = dict(conv=conv, flow_preset=args.flow_preset, accumulate=args.accumulate,
                  max_frames=max_frames, label_stride=args.label_stride)  # fmt: skip
        speed_video = clips[0].video
        if args.no_throughput:
            base, runs = [], []
        else:
            base, runs = throughput.sweep(model, speed_video, variants, intervals, **kw)
        width, height = _size(speed_video)
    base_fps = float(np.mean([b.fps for b in base])) if base else float("nan")
    speed = {(t.variant, t.interval): t for t in runs}
    table = report.rows(sweep, variants, intervals, base_fps, speed)

    what = "agreement with the per-frame model (fidelity, NOT accuracy)" if args.reference else (
        "mIoU against ground truth")  # fmt: skip
    cut = f", split: {model.split}" if getattr(model, "split", None) else ""
    note = (f"Model `{model_name}` ({weights or 'random'} weights{cut}), {clips[0].name}"
            f"{f' and {len(clips) - 1} more clips' if len(clips) > 1 else ''}, {width}x{height}; "
            f"{what}; throughput on {platform.machine()} {_cpu()} with {torch.get_num_threads()} "
            f"threads, decode included.")  # fmt: skip
    if args.dataset == "camvid":
        note += (" CamVid run at 15 Hz: one frame step here is two of the paper's 30 Hz steps, "
                 "so interval n here spans the time of the paper's 2n.")  # fmt: skip
    report.write_csv(out / "results.csv", table)
    report.write_csv(out / "phases.csv", sweep.phase_rows(), report.PHASE_COLUMNS)
    (out / "table.md").write_text(report.table_md(table, intervals, note))
    (out / "fusion.md").write_text(
        report.fusion_md(
            sweep,
            fusions,
            note + " Distance d: the "
            "frame sits d frames after one keyframe and d before the next "
            "(n = 2d); forward/backward = one direction only.",
        )
    )
    if base:
        (out / "breakdown.md").write_text(report.breakdown_md(base, runs, note + " Mean ms per "
                                          "frame in each stage."))  # fmt: skip
    title = f"{model_name} on {clips[0].name} ({width}x{height})"
    report.plot_tradeoff(table, "miou_avg", out / "accuracy_vs_throughput.png", title)
    report.plot_tradeoff(table, "miou_min", out / "min_accuracy_vs_throughput.png", title)
    if sweep.examples and "images" in sweep.examples:
        report.plot_examples(sweep.examples, model.palette, out / "examples.png",
                             f"{title}: keyframe interval {sweep.example_interval}")  # fmt: skip
    summary = {
        "command": "bmvseg " + " ".join(sys.argv[1:]),
        "model": model_name,
        "weights": str(weights),
        "split": getattr(model, "split", None),
        "reference": args.reference or "ground truth",
        "measures": what,
        "clips": [{"name": c.name, "encoding": c.encoding} for c in clips],
        "frames_scored": sweep.frames_scored,
        "intervals": intervals,
        "variants": [v.label for v in variants],
        "per_frame_fps_first_last": [round(b.fps, 3) for b in base],
        "notes": notes,
        "machine": {"platform": platform.platform(), "cpu": _cpu(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "device": args.device},  # fmt: skip
        "versions": {"bmvseg": bmvseg.__version__, "torch": torch.__version__,
                     "av": av.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        "wall_time_s": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(report.table_md(table, intervals, note))
    for n in notes:
        print(f"bmvseg: notice: {n}")
    print(f"results in {out}")
    return 0


def _clips(args: argparse.Namespace, tmp: Path):
    if args.video:
        yield clipsmod.unlabelled(args.video)
    elif args.dataset == "camvid":
        yield clipsmod.camvid_run(args.root, tmp)
    elif args.dataset == "cityscapes":
        yield from clipsmod.cityscapes_snippets(args.root, tmp, limit=args.limit_clips)
    else:
        h, w = QUICK["size"] if args.quick else (240, 320)
        frames = (args.max_frames or QUICK["frames"]) if args.quick else (args.max_frames or 60)
        yield clipsmod.synthetic_clip(tmp, frames=frames, height=h, width=w)


def _size(video: Path) -> tuple[int, int]:
    with av.open(str(video)) as c:
        s = c.streams.video[0]
        return s.codec_context.width, s.codec_context.height


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
