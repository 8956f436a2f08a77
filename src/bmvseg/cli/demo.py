"""``bmvseg demo``: the whole idea on a generated street clip, no dataset or network needed.

It renders a clip with exact labels, scores per-frame and the propagation schemes at a few
keyframe intervals against those labels, times them on the same video, and writes a
side-by-side video, the accuracy-throughput plot and a short report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from bmvseg.data.classes import colorize
from bmvseg.data.synthetic.clip import read_clip, render_clip, write_clip
from bmvseg.errors import BmvsegError
from bmvseg.evaluation import report, throughput
from bmvseg.evaluation.clips import ENCODING, EvalClip
from bmvseg.evaluation.sweep import AccuracySweep, Variant
from bmvseg.models.registry import build_model
from bmvseg.schemes.engine import Engine, EngineConfig
from bmvseg.video.encode import VideoWriter
from bmvseg.video.reader import VideoReader

VARIANTS = [
    Variant("per-frame"),
    Variant("prop-flow"),
    Variant("prop-bmv"),
    Variant("inter-bmv", "avg"),
]
INTERVALS = [1, 3, 5, 10]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="segment a generated street clip and show speed and accuracy (no data needed)",
        description="Render a street clip with exact labels, run per-frame and the propagation "
        "schemes at keyframe intervals 1, 3, 5, 10, and write side_by_side.mp4, "
        "accuracy_vs_throughput.png and report.md to the output directory.",
    )
    p.add_argument(
        "-o", "--output", default="bmvseg-demo", help="output dir (default: %(default)s)"
    )
    p.add_argument(
        "--seed",
        type=int,
        default=200007,
        help="scene seed; 200000+ are test-split streets never trained on",
    )
    p.add_argument("--frames", type=int, default=90, help="clip length (default: %(default)s)")
    p.add_argument("--size", default="240x320", help="HxW (default: %(default)s)")
    p.add_argument("--interval", type=int, default=5, help="inter-BMV interval in the video")
    p.add_argument("--model", default="synthetic_demo", help="model (default: %(default)s)")
    p.add_argument("--weights", default="default", help="checkpoint path, 'default' or 'none'")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        h, w = (int(x) for x in args.size.lower().split("x"))
    except ValueError:
        raise BmvsegError(f"bad --size {args.size!r}: use HxW, e.g. 240x320") from None
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BmvsegError(f"cannot create {out}: {exc.strerror}") from None
    torch.manual_seed(0)
    model = build_model(args.model, weights=args.weights)
    model = model.to(memory_format=torch.channels_last)

    print(f"rendering a {args.frames}-frame {w}x{h} street clip (seed {args.seed}) ...", flush=True)
    video = write_clip(render_clip(args.seed, h, w, args.frames), out / "clip",
                       codec_options=ENCODING, flow=False)  # fmt: skip
    truth = read_clip(video.parent).labels
    clip = EvalClip(f"synthetic seed {args.seed}", video, dict(enumerate(truth)), ENCODING)

    sweep = AccuracySweep(model, VARIANTS, INTERVALS)
    per_frame = sweep.add_clip(clip)
    kw = {"conv": None, "flow_preset": "fast", "accumulate": False, "max_frames": None}
    base, runs = throughput.sweep(model, video, VARIANTS, INTERVALS, **kw)
    base_fps = float(np.mean([b.fps for b in base]))
    table = report.rows(
        sweep, VARIANTS, INTERVALS, base_fps, {(t.variant, t.interval): t for t in runs}
    )
    report.write_csv(out / "results.csv", table)
    note = (f"Model `{args.model}` on a generated {w}x{h} clip ({args.frames} frames, seed "
            f"{args.seed}); mIoU against the generator's exact labels; fps of the whole pipeline "
            "(decode included) here; speedup against per-frame in the same run.")  # fmt: skip
    md = report.table_md(table, INTERVALS, note)
    report.plot_tradeoff(table, "miou_avg", out / "accuracy_vs_throughput.png",
                         f"bmvseg demo: {args.model}, generated {w}x{h} street clip")  # fmt: skip
    _side_by_side(model, video, truth, per_frame, args.interval, out)
    (out / "report.md").write_text(
        "# bmvseg demo\n\n"
        + md
        + "\nFiles: `side_by_side.mp4` (input | ground truth | per-frame | "
        f"inter-BMV k={args.interval}), `side_by_side.png` (one frame of it), "
        "`accuracy_vs_throughput.png`, `results.csv`.\n"
    )
    print(md)
    print(f"side-by-side video, plot and report in {out}/")
    return 0


def _side_by_side(model, video: Path, truth: np.ndarray, per_frame: dict[int, np.ndarray],
                  n: int, out: Path) -> None:  # fmt: skip
    """input | ground truth | per-frame | inter-BMV, with scheme, offset and running fps drawn."""
    engine = Engine(model, EngineConfig(scheme="inter-bmv", interval=n, fusion="avg"))
    palette = model.palette
    still = None
    t0 = time.perf_counter()
    with VideoReader(video) as reader, VideoWriter(out / "side_by_side.mp4", fps=reader.fps) as wr:
        results = engine.run(reader.frames(images=True))
        for i, res in enumerate(tqdm(results, total=len(truth), desc="side-by-side", leave=False)):
            fps = (i + 1) / (time.perf_counter() - t0)
            tag = "keyframe" if res.keyframe else f"key+{res.offset}"
            panels = [
                _caption(res.image, f"input #{res.index}"),
                _caption(colorize(truth[res.index], palette), "ground truth"),
                _caption(colorize(per_frame[res.index], palette), "per-frame"),
                _caption(colorize(res.labels, palette), f"inter-BMV k={n} {tag} {fps:.0f} fps"),
            ]
            frame = np.concatenate(panels, axis=1)
            wr.write(frame)
            if still is None and res.offset == n // 2 and res.index > n:
                still = frame
    if still is not None:
        cv2.imwrite(str(out / "side_by_side.png"), cv2.cvtColor(still, cv2.COLOR_RGB2BGR))


def _caption(img: np.ndarray, text: str) -> np.ndarray:
    img = np.ascontiguousarray(img.copy())
    cv2.rectangle(img, (0, 0), (img.shape[1], 16), (0, 0, 0), -1)
    cv2.putText(img, text, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (255, 255, 255), 1, cv2.LINE_AA)
    return img
