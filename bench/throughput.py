"""End-to-end throughput of ``bmvseg segment`` on real-format videos: per-frame vs every scheme.

    python bench/throughput.py --root path/to/camvid                # real frames (CamVid 0016E5)
    python bench/throughput.py --models enet_lite --intervals 1,5,10 --loops 2
    python bench/throughput.py --synthetic 960x540                  # no dataset: generated streets
    python bench/throughput.py --video clip.mp4 --resize 960x540 --frames 41 \
        --segformer-b2 --intervals 10 --spaces            # a heavy model on a real clip
    python bench/throughput.py --video clip.avi --frames 101 --intervals 10   # a clip as it is

Each video is made here from the frames at hand, in two formats users bring: H.264 as a camera
encoder writes it with B-frames and three references (so motion comes from bmvseg's re-encoder) and
MPEG-4 part 2 (the stream's own vectors). CamVid's frames are real footage (480x360, upscaled 2x to
960x720 by default); they are never written anywhere but a temporary directory. Every configuration
is :func:`bmvseg.run.segment_to_dir` with the default outputs (label PNGs and overlay.mp4), decode
included, in one process, so speed is a ratio to the per-frame run measured beside it (first and
last; their disagreement is printed and flags the rows when above 10 %). The cost of an
intermediate frame relative to a keyframe follows from the two: with per-frame time t_key, a run of
N frames taking T seconds with K keyframes has t_inter = (T - K t_key) / (N - K).

With ``--video`` the clips are users' files: used as they are (their own codec and vectors), or
with ``--resize`` decoded, resized and written as H.264 (three references, B-frames) first; the
runs then stop after ``--frames`` frames and per-frame is measured first and last around the
other rows (after a 3-frame warm-up).  ``--segformer-b2`` segments with a SegFormer shaped like
MiT-B2 (random weights written with ``save_pretrained`` to a temporary directory, 19 classes);
``--spaces`` adds, beside each fusing row, the same run held in feature space (class space off:
:mod:`bmvseg.models.class_space`), so the two are compared in one process.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

import bmvseg.schemes.engine as engine_module
from bmvseg.data.images import read_rgb
from bmvseg.evaluation.sweep import Variant, variants_of
from bmvseg.evaluation.throughput import BASELINE_TOLERANCE, baseline_spread, measure, sweep
from bmvseg.models.registry import default_weights_path
from bmvseg.run.build import prepare_model
from bmvseg.run.options import RunOptions
from bmvseg.schemes.config import EngineConfig
from bmvseg.schemes.registry import SCHEMES, reference_scheme
from bmvseg.video.encode import encode_video
from bmvseg.video.reader import VideoReader

VARIANTS = variants_of(SCHEMES, [EngineConfig().fusion])  # every scheme, the default fusion
# The two formats: what a camera or an export writes (B-frames, several references) and an
# MPEG-4 part 2 file as older cameras and screen grabbers write it.
FORMATS = {
    "h264-bframes-3ref": {"codec": "libx264", "options": {"crf": "20", "preset": "medium"}},
    "mpeg4-part2": {"codec": "mpeg4", "options": {"qscale": "4"}},
}


def frames_from(args) -> tuple[str, list[np.ndarray]]:
    """The frames to encode: CamVid's 15 Hz run (played forward then back ``loops`` times)."""
    if args.synthetic:
        from bmvseg.data.synthetic.clip import render_clip

        w, h = (int(x) for x in args.synthetic.split("x"))
        clip = render_clip(200011, h, w, args.frames)
        return f"generated street {w}x{h}", [clip.frame(i, flow=False).rgb
                                             for i in range(args.frames)]  # fmt: skip
    from bmvseg.data.camvid import video_run

    run = [read_rgb(p) for p in video_run(args.root)]
    if args.upscale != 1:  # the 11-class CamVid release is 480x360; users' footage is larger
        h, w = run[0].shape[:2]
        size = (round(w * args.upscale), round(h * args.upscale))
        run = [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in run]
    frames = []
    for i in range(args.loops):
        frames += run if i % 2 == 0 else run[::-1][1:]
    return (f"CamVid 0016E5 15 Hz run ({len(run)} real frames, x{args.upscale:g} bicubic, "
            f"x{args.loops} ping-pong)", frames)  # fmt: skip


def report(name: str, video: str, base, runs) -> None:
    t_key = float(np.mean([1 / b.fps for b in base]))
    spread = baseline_spread(base)
    flag = " **UNRELIABLE: baseline passes disagree**" if spread > BASELINE_TOLERANCE else ""
    print(f"\n## {name}, {video}: per-frame {1 / t_key:.2f} fps (first {base[0].fps:.2f}, "
          f"last {base[1].fps:.2f}, spread {100 * spread:.0f}%){flag}\n")  # fmt: skip
    stages = [s for s in base[0].stage_ms if any(t.stage_ms.get(s, 0) > 0.05 for t in runs + base)]
    print("| scheme | k | fps | x per-frame | inter/key cost | "
          + " | ".join(f"{s} ms" for s in stages) + " |")  # fmt: skip
    print("|---|---|---|---|---|" + "---|" * len(stages))
    for t in base[:1] + runs:
        k, n, keys = t.interval, t.frames, t.keyframes or t.frames
        inter = (t.seconds - keys * t_key) / (n - keys) / t_key if n > keys else float("nan")
        cells = " | ".join(f"{t.stage_ms.get(s, 0):.1f}" for s in stages)
        label = t.variant.label + (" feature space" if getattr(t, "feature_space", 0) else "")
        print(f"| {label} | {k} | {t.fps:.2f} | {t.fps * t_key:.2f} | "
              f"{'' if n == keys else f'{100 * inter:.1f}%'} | {cells} |")  # fmt: skip


def b2_weights(tmp: str) -> str:
    """A SegFormer shaped like MiT-B2 with random weights, saved where ``--weights`` reads it."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    cfg = SegformerConfig(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3],
                          decoder_hidden_size=768, num_labels=19)  # fmt: skip
    path = str(Path(tmp) / "segformer-b2-random")
    SegformerForSemanticSegmentation(cfg).eval().save_pretrained(path)
    return path


def clip_from(video: str, size: str | None, frames: int, tmp: str) -> tuple[str, Path]:
    """A user's clip as it is, or its first ``frames`` frames resized and written as H.264."""
    if size is None:
        return Path(video).name, Path(video)
    w, h = (int(x) for x in size.split("x"))
    with VideoReader(video) as reader:
        rgb = [cv2.resize(fr.image, (w, h), interpolation=cv2.INTER_AREA)
               for fr, _ in zip(reader.frames(), range(frames), strict=False)]  # fmt: skip
    out = Path(tmp) / f"{Path(video).stem}-{w}x{h}.mp4"
    spec = FORMATS["h264-bframes-3ref"]
    encode_video(rgb, out, fps=24.0, codec=spec["codec"], options=spec["options"])
    return f"{Path(video).name} {w}x{h} {spec['codec']} 3 refs", out


@contextlib.contextmanager
def feature_space():
    """Runs inside stay in feature space (the engine asks where to cut the task)."""
    real = engine_module.task_cut
    engine_module.task_cut = lambda model, like: None
    try:
        yield
    finally:
        engine_module.task_cut = real


def clip_runs(model, video, variants, intervals, opts, end: int, spaces: bool):
    """Per-frame first and last around every other row, on the clip's first ``end`` frames."""
    base, kw = Variant(reference_scheme()), {"options": opts, "end": end}
    variants = [v for v in variants if v.traits.uses_interval]
    with torch.inference_mode():
        measure(model, video, base, 1, options=opts, end=3)  # warm-up
        first, runs = measure(model, video, base, 1, **kw), []
        for v in variants:
            for n in intervals:
                runs.append(measure(model, video, v, n, **kw))
                if spaces and v.traits.fuses:
                    with feature_space():
                        runs.append(measure(model, video, v, n, **kw))
                    runs[-1].feature_space = 1
        last = measure(model, video, base, 1, **kw)
    return [first, last], runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CAMVID_ROOT"), help="CamVid root")
    ap.add_argument("--synthetic", metavar="WxH", help="generated frames instead of CamVid")
    ap.add_argument("--frames", type=int, default=120, help="--synthetic: clip length")
    ap.add_argument("--loops", type=int, default=2, help="CamVid: forward/back passes")
    ap.add_argument("--upscale", type=float, default=2.0,
                    help="CamVid: resize factor (2: 480x360 -> 960x720)")
    ap.add_argument("--video", action="append", help="a clip of one's own (repeatable)")
    ap.add_argument("--resize", metavar="WxH", help="--video: resize and write as H.264 first")
    ap.add_argument("--schemes", default="inter-bmv", help="--video: the schemes timed")
    ap.add_argument("--segformer-b2", action="store_true", help="a MiT-B2-shaped SegFormer")
    ap.add_argument("--spaces", action="store_true", help="also each fusing row in feature space")
    ap.add_argument("--models", default="enet_lite")
    ap.add_argument("--intervals", default="1,5,10")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    if not args.root and not args.synthetic and not args.video:
        ap.error("give --root path/to/camvid (real frames), --synthetic WxH or --video FILE")
    torch.set_num_threads(args.threads)
    intervals = [int(x) for x in args.intervals.split(",")]
    if args.video:
        return user_clips(args, intervals)
    what, frames = frames_from(args)
    load = os.getloadavg()[0]
    print(f"# {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"{args.threads} torch threads, torch {torch.__version__}, load average {load:.1f} at "
          f"start; {what}, {frames[0].shape[1]}x{frames[0].shape[0]}; `bmvseg segment` with "
          "label PNGs and overlay.mp4 written")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        videos = {}
        for fmt in args.formats.split(","):
            spec = FORMATS[fmt]
            videos[fmt] = Path(tmp) / f"{fmt}.mp4"
            encode_video(frames, videos[fmt], fps=15.0, codec=spec["codec"],
                         options=spec["options"])  # fmt: skip
        del frames
        for name in args.models.split(","):
            opts = RunOptions(model=name, weights="default" if default_weights_path(name)
                              else None)  # fmt: skip
            model = prepare_model(opts)
            for fmt, video in videos.items():
                base, runs = sweep(model, video, VARIANTS, intervals, opts)
                report(name, fmt, base, runs)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


def user_clips(args, intervals: list[int]) -> None:
    """``--video``: each clip's first ``--frames`` frames, per-frame around the other rows."""
    variants = variants_of(args.schemes.split(","), [EngineConfig().fusion])
    print(f"# {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"{args.threads} torch threads, torch {torch.__version__}, load average "
          f"{os.getloadavg()[0]:.1f} at start; first {args.frames} frames of each clip; "
          "`bmvseg segment` with label PNGs and overlay.mp4 written")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        names = ["segformer"] if args.segformer_b2 else args.models.split(",")
        for name in names:
            weights = b2_weights(tmp) if args.segformer_b2 else (
                "default" if default_weights_path(name) else None)  # fmt: skip
            opts = RunOptions(model=name, weights=weights)
            model = prepare_model(opts)
            for video in args.video:
                what, path = clip_from(video, args.resize, args.frames, tmp)
                base, runs = clip_runs(model, path, variants, intervals, opts, args.frames,
                                       args.spaces)  # fmt: skip
                report("segformer-b2 (random)" if args.segformer_b2 else name, what, base, runs)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
