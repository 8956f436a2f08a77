"""``bmvseg benchmark``'s run: the paper's accuracy-throughput evidence, written to a directory.

Accuracy comes from :class:`~bmvseg.evaluation.sweep.AccuracySweep` (the engine at every
keyframe phase), speed from :mod:`bmvseg.evaluation.throughput` (``segment``'s own run, outputs
written); the directory is claimed like every output (:mod:`bmvseg.output.rundir`).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import torch

import bmvseg
from bmvseg.data.classes import ClassSet
from bmvseg.errors import BmvsegError
from bmvseg.evaluation import clips as clipsmod
from bmvseg.evaluation import report, throughput
from bmvseg.evaluation.placement import PLACEMENT_COLUMNS, compare_placements, placement_md
from bmvseg.evaluation.sweep import AccuracySweep, variants_of
from bmvseg.models.registry import fusion_weights_for
from bmvseg.output import claim_output_dir
from bmvseg.output.frames import CLASSES_FILE
from bmvseg.run.build import load_conv_fusion, prepare_model
from bmvseg.run.options import RunOptions
from bmvseg.schemes.fusion import FUSIONS
from bmvseg.schemes.registry import SCHEMES, scheme_class, scheme_traits

DATASETS = ("camvid", "cityscapes", "synthetic")
QUICK = {"intervals": [1, 2, 4], "frames": 24, "size": (120, 160)}


@dataclass
class BenchmarkSpec:
    """What to measure; ``video`` (scored against per-frame) or ``dataset`` (ground truth)."""

    output: str | os.PathLike
    options: RunOptions
    video: str | None = None
    dataset: str | None = None
    root: str | None = None
    schemes: list[str] = field(default_factory=lambda: list(SCHEMES))
    fusions: list[str] = field(default_factory=lambda: ["avg", "max", "conv"])
    intervals: list[int] = field(default_factory=lambda: list(range(1, 11)))
    reference: str | None = None
    quick: bool = False
    max_frames: int | None = None
    limit_clips: int | None = None
    throughput: bool = True
    overwrite: bool = False
    command: str = "bmvseg.evaluation.benchmark.run_benchmark (Python)"

    def validate(self) -> None:
        if self.quick and self.dataset is None and self.video is None:
            self.dataset = "synthetic"
        if (self.video is None) == (self.dataset is None):
            raise BmvsegError("give either a VIDEO (with --reference per-frame) or --dataset")
        if self.video is not None and self.reference is None:
            raise BmvsegError("an unlabelled VIDEO needs --reference per-frame")
        if self.dataset is not None and self.dataset not in DATASETS:
            raise BmvsegError(f"unknown dataset {self.dataset!r}; choose from {DATASETS}")
        if self.dataset in ("camvid", "cityscapes") and not self.root:
            raise BmvsegError(f"--dataset {self.dataset} needs --root")
        if self.max_frames is not None and self.max_frames < 2:
            raise BmvsegError(f"--max-frames must be >= 2, got {self.max_frames}")
        for s in self.schemes:
            scheme_class(s)  # a user error naming the choices if unknown
        for f in self.fusions:
            if f not in FUSIONS:
                raise BmvsegError(f"unknown fusion {f!r}; choose from {', '.join(FUSIONS)}")
        if self.quick:
            self.intervals = QUICK["intervals"]
            self.max_frames = self.max_frames or QUICK["frames"]


def run_benchmark(spec: BenchmarkSpec) -> tuple[str, list[str]]:
    """Measure, write the results directory; returns (the table as Markdown, notices)."""
    t_start = time.perf_counter()
    spec.validate()
    opts = spec.options
    if opts.model == "":  # the dataset's model
        opts = opts.replace(model="synthetic_demo" if spec.dataset == "synthetic" else "enet_lite")
    model = prepare_model(opts)
    model_name = opts.model if isinstance(opts.model, str) else type(opts.model).__name__
    fusions, notes = list(spec.fusions), []
    conv = None
    if any(scheme_traits(s).fuses for s in spec.schemes) and "conv" in fusions:
        path = opts.fusion_weights or (fusion_weights_for(opts.model, opts.weights)
                                       if isinstance(opts.model, str) else None)  # fmt: skip
        if path is not None and Path(path).is_file():
            conv = load_conv_fusion(model, path)
            opts = opts.replace(fusion_weights=str(path))
        else:
            fusions.remove("conv")
            notes.append(f"conv fusion skipped: no fusion weights for {model_name}")
    variants = variants_of(spec.schemes, fusions)
    identity = {"command": spec.command, "model": model_name, "weights": str(opts.weights)}
    inputs = [spec.video] if spec.video else []
    out = claim_output_dir(spec.output, "benchmark", identity, inputs=inputs,
                           overwrite=spec.overwrite)  # fmt: skip
    sweep = AccuracySweep(model, variants, spec.intervals, conv=conv,
                          flow_preset=opts.flow_preset, accumulate=opts.accumulate,
                          label_stride=opts.label_stride)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bmvseg-bench-") as tmp:
        clips = list(_clips(spec, Path(tmp)))
        placements = []
        for clip in clips:
            per_frame = sweep.add_clip(clip, spec.max_frames)
            if opts.keyframes != "fixed":  # fixed vs adaptive at the same budget
                placements += compare_placements(
                    model, clip.video, clip.labels or per_frame, variants, spec.intervals,
                    clip_name=clip.name, conv=conv, end=spec.max_frames, config={
                        "flow_preset": opts.flow_preset, "accumulate": opts.accumulate,
                        "label_stride": opts.label_stride, "max_interval": opts.max_interval})
                    # fmt: skip
        if sweep.frames_scored == 0:
            raise BmvsegError("no labelled frames to score")
        speed_video = clips[0].video
        base, runs = [], []
        if spec.throughput:
            base, runs = throughput.sweep(model, speed_video, variants, spec.intervals, opts,
                                          end=spec.max_frames)  # fmt: skip
        width, height = _size(speed_video)
    warning = throughput.baseline_warning(base)
    if warning:
        notes.append(warning)
    base_fps = float(np.mean([b.fps for b in base])) if base else None
    speed = {(t.variant, t.interval): t for t in runs}
    table = report.rows(sweep, variants, spec.intervals, base_fps, speed)

    what = "agreement with the per-frame model (fidelity, NOT accuracy)" if spec.reference else (
        "mIoU against ground truth")  # fmt: skip
    cut = f", split: {model.split}" if model.split else ""
    note = (f"Model `{model_name}` ({opts.weights or 'random'} weights{cut}), {clips[0].name}"
            f"{f' and {len(clips) - 1} more clips' if len(clips) > 1 else ''}, {width}x{height}; "
            f"{what}; " + (f"throughput of `bmvseg segment` (decode, label PNGs and overlay "
            f"written) on {platform.machine()} {_cpu()} with {torch.get_num_threads()} threads."
            if base else "throughput not measured."))  # fmt: skip
    if spec.dataset == "camvid":
        note += (" CamVid run at 15 Hz: one frame step here is two of the paper's 30 Hz steps, "
                 "so interval n here spans the time of the paper's 2n.")  # fmt: skip
    classes = ClassSet.of(model)
    files = {
        "results.csv": report.csv_text(table),
        "phases.csv": report.csv_text(sweep.phase_rows(), report.PHASE_COLUMNS),
        "table.md": report.warning_md(warning) + report.table_md(table, spec.intervals, note)
        + "\n" + report.classes_md(classes.record()),  # fmt: skip
        "fusion.md": report.fusion_md(sweep, variants, note + " Distance d: the frame sits d "
                                      "frames after one keyframe and d before the next (n = 2d); "
                                      "forward/backward = one direction only."),  # fmt: skip
    }
    if base:
        stages = note + " Mean ms per frame in each stage of the model's thread."
        files["breakdown.md"] = report.breakdown_md(base, runs, stages)
    if placements:
        files["placement.csv"] = report.csv_text(placements, PLACEMENT_COLUMNS)
        files["placement.md"] = placement_md(placements, note + " Fixed placement at phase 0, "
                                             "adaptive as `--keyframes adaptive` runs it.")
    for name, text in files.items():
        out.write_bytes(out.path / name, text.encode())
    out.write_json(CLASSES_FILE, classes.record())
    title = f"{model_name} on {clips[0].name} ({width}x{height})"
    for key, name in (("miou_avg", "accuracy_vs_throughput.png"),
                      ("miou_min", "min_accuracy_vs_throughput.png")):  # fmt: skip
        report.plot_tradeoff(table, key, out.path / name, title, warning)
    if sweep.examples and "images" in sweep.examples:
        report.plot_examples(sweep.examples, classes, out.path / "examples.png",
                             f"{title}: keyframe interval {sweep.example_interval}")  # fmt: skip
    summary = {
        "command": spec.command,
        "model": model_name,
        "weights": str(opts.weights),
        "split": model.split,
        "classes": classes.record(),
        "reference": spec.reference or "ground truth",
        "measures": what,
        "clips": [{"name": c.name, "encoding": c.encoding} for c in clips],
        "frames_scored": sweep.frames_scored,
        "intervals": spec.intervals,
        "variants": [v.label for v in variants],
        "per_frame_fps_first_last": [round(b.fps, 3) for b in base],
        "notes": notes,
        "machine": {"platform": platform.platform(), "cpu": _cpu(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "device": str(opts.device)},
        "versions": {"bmvseg": bmvseg.__version__, "torch": torch.__version__,
                     "av": av.__version__, "opencv": cv2.__version__, "numpy": np.__version__},
        "wall_time_s": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    out.write_json("summary.json", summary)
    text = report.table_md(table, spec.intervals, note)  # the warning is among the notes
    if placements:
        text += "\n" + files["placement.md"]
    return text, notes


def _clips(spec: BenchmarkSpec, tmp: Path) -> Iterator[clipsmod.EvalClip]:
    if spec.video:
        yield clipsmod.unlabelled(spec.video)
    elif spec.dataset == "camvid":
        yield clipsmod.camvid_run(spec.root, tmp)
    elif spec.dataset == "cityscapes":
        yield from clipsmod.cityscapes_snippets(spec.root, tmp, limit=spec.limit_clips)
    else:
        h, w = QUICK["size"] if spec.quick else (240, 320)
        frames = spec.max_frames or (QUICK["frames"] if spec.quick else 60)
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
