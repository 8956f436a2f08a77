"""The demo: the whole idea on a generated street clip, no dataset or network needed.

It renders a clip with exact labels, scores per-frame and the propagation schemes at a few
keyframe intervals against those labels (the engine at every phase, as the benchmark does),
times ``bmvseg segment`` on the same video, and writes a side-by-side video, the
accuracy-throughput plot and a short report into a directory claimed like every output.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bmvseg import progress
from bmvseg.data.classes import ClassSet, colorize
from bmvseg.data.synthetic.clip import read_clip, render_clip, write_clip
from bmvseg.evaluation import report, throughput
from bmvseg.evaluation.clips import ENCODING, EvalClip
from bmvseg.evaluation.sweep import AccuracySweep, variants_of
from bmvseg.output import claim_output_dir
from bmvseg.output.frames import CLASSES_FILE
from bmvseg.run.build import prepare_model
from bmvseg.run.iterate import segment
from bmvseg.run.options import RunOptions
from bmvseg.schemes.config import EngineConfig
from bmvseg.schemes.registry import SCHEMES
from bmvseg.video.encode import VideoWriter

VARIANTS = variants_of(SCHEMES, [EngineConfig().fusion])  # every scheme, the default fusion
INTERVALS = [1, 3, 5, 10]


def run_demo(output: str | os.PathLike, *, seed: int = 200007, frames: int = 90,
             height: int = 240, width: int = 320, interval: int = 5,
             model: str = "synthetic_demo", weights: str | None = "default",
             overwrite: bool = False, say=print) -> str:  # fmt: skip
    """Render, score, time and draw; returns the report (Markdown) also written as report.md."""
    opts = RunOptions(model=model, weights=weights)
    identity = {"seed": seed, "frames": frames, "size": [height, width], "model": model,
                "weights": str(weights), "interval": interval}  # fmt: skip
    out = claim_output_dir(output, "demo", identity, overwrite=overwrite)
    torch.manual_seed(0)
    net = prepare_model(opts)
    h, w = height, width
    say(f"rendering a {frames}-frame {w}x{h} street clip (seed {seed}) ...")
    rendered = render_clip(seed, h, w, frames)
    video = write_clip(rendered, out.path / "clip", codec_options=ENCODING, flow=False)
    truth = read_clip(video.parent).labels
    clip = EvalClip(f"synthetic seed {seed}", video, dict(enumerate(truth)), ENCODING)

    sweep = AccuracySweep(net, VARIANTS, INTERVALS)
    per_frame = sweep.add_clip(clip)
    base, runs = throughput.sweep(net, video, VARIANTS, INTERVALS, opts)
    warning = throughput.baseline_warning(base)
    if warning:
        say(f"warning: {warning}")
    base_fps = float(np.mean([b.fps for b in base]))
    table = report.rows(
        sweep, VARIANTS, INTERVALS, base_fps, {(t.variant, t.interval): t for t in runs}
    )
    out.write_bytes(out.path / "results.csv", report.csv_text(table).encode())
    note = (f"Model `{model}` on a generated {w}x{h} clip ({frames} frames, seed "
            f"{seed}); mIoU against the generator's exact labels; fps of `bmvseg segment` here "
            "(decode, label PNGs and overlay written); speedup against per-frame in the same "
            "run.")  # fmt: skip
    md = report.warning_md(warning) + report.table_md(table, INTERVALS, note)
    title = f"bmvseg demo: {model}, generated {w}x{h} street clip"
    report.plot_tradeoff(table, "miou_avg", out.path / "accuracy_vs_throughput.png", title, warning)
    classes = ClassSet.of(net)
    out.write_json(CLASSES_FILE, classes.record())
    _side_by_side(net, video, truth, per_frame, interval, out.path, rendered.fps, opts.scheme)
    text = ("# bmvseg demo\n\n" + md + "\nFiles: `side_by_side.mp4` (input | ground truth | "
            f"per-frame | {opts.scheme} k={interval}, the classes' colours under them), "
            "`side_by_side.png` (one frame of it), `accuracy_vs_throughput.png`, "
            "`results.csv`, `classes.json`.\n\n" + report.classes_md(classes.record()))  # fmt: skip
    out.write_bytes(out.path / "report.md", text.encode())
    return md


def _side_by_side(model, video: Path, truth: np.ndarray, per_frame: dict[int, np.ndarray],
                  n: int, out: Path, fps: float, scheme: str) -> None:  # fmt: skip
    """input | ground truth | per-frame | ``scheme`` (the default one), with scheme, offset and
    running fps drawn, and the legend of every class under them (the same on every frame)."""
    palette = model.palette
    legend = ClassSet.of(model).legend(keyframe_note=False)
    still = None
    t0 = time.perf_counter()
    with VideoWriter(out / "side_by_side.mp4", fps=fps) as wr:
        results = segment(video, model=model, scheme=scheme, interval=n)
        bar = progress.bar(results, total=len(truth), desc="side-by-side", leave=False)
        for i, res in enumerate(bar):
            rate = (i + 1) / (time.perf_counter() - t0)
            tag = "keyframe" if res.keyframe else f"key+{res.offset}"
            panels = [
                _caption(res.image, f"input #{res.index}"),
                _caption(colorize(truth[res.index], palette), "ground truth"),
                _caption(colorize(per_frame[res.index], palette), "per-frame"),
                _caption(colorize(res.labels, palette), f"{scheme} k={n} {tag} {rate:.0f} fps"),
            ]
            row = np.concatenate(panels, axis=1)
            strip = legend.strip(range(len(palette)), row.shape[1], 2 * panels[0].shape[1])
            frame = np.concatenate([row, strip], axis=0)
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
