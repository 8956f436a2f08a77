"""End-to-end throughput of ``bmvseg segment`` on real-format videos: per-frame vs every scheme.

    python bench/throughput.py --root path/to/camvid                # real frames (CamVid 0016E5)
    python bench/throughput.py --models enet_lite --intervals 1,5,10 --loops 2
    python bench/throughput.py --synthetic 960x540                  # no dataset: generated streets

Each video is made here from the frames at hand, in two formats users bring: H.264 as a camera
encoder writes it with B-frames and three references (so motion comes from bmvseg's re-encoder) and
MPEG-4 part 2 (the stream's own vectors). CamVid's frames are real footage (480x360, upscaled 2x to
960x720 by default); they are never written anywhere but a temporary directory. Every configuration
is :func:`bmvseg.run.segment_to_dir` with the default outputs (label PNGs and overlay.mp4), decode
included, in one process, so speed is a ratio to the per-frame run measured beside it (first and
last; their disagreement is printed and flags the rows when above 10 %). The cost of an
intermediate frame relative to a keyframe follows from the two: with per-frame time t_key, a run of
N frames taking T seconds with K keyframes has t_inter = (T - K t_key) / (N - K).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from bmvseg.data.images import read_rgb
from bmvseg.evaluation.sweep import variants_of
from bmvseg.evaluation.throughput import BASELINE_TOLERANCE, baseline_spread, sweep
from bmvseg.models.registry import default_weights_path
from bmvseg.run.build import prepare_model
from bmvseg.run.options import RunOptions
from bmvseg.schemes.config import EngineConfig
from bmvseg.schemes.registry import SCHEMES
from bmvseg.video.encode import encode_video

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
        print(f"| {t.variant.label} | {k} | {t.fps:.2f} | {t.fps * t_key:.2f} | "
              f"{'' if n == keys else f'{100 * inter:.1f}%'} | {cells} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CAMVID_ROOT"), help="CamVid root")
    ap.add_argument("--synthetic", metavar="WxH", help="generated frames instead of CamVid")
    ap.add_argument("--frames", type=int, default=120, help="--synthetic: clip length")
    ap.add_argument("--loops", type=int, default=2, help="CamVid: forward/back passes")
    ap.add_argument("--upscale", type=float, default=2.0,
                    help="CamVid: resize factor (2: 480x360 -> 960x720)")
    ap.add_argument("--models", default="enet_lite")
    ap.add_argument("--intervals", default="1,5,10")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    if not args.root and not args.synthetic:
        ap.error("give --root path/to/camvid (real frames) or --synthetic WxH")
    torch.set_num_threads(args.threads)
    intervals = [int(x) for x in args.intervals.split(",")]
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


if __name__ == "__main__":
    main()
