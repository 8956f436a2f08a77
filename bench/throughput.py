"""Throughput of per-frame vs every scheme and keyframe interval on one generated video.

    python bench/throughput.py --models enet_lite --sizes 480x360,960x720
    python bench/throughput.py --models deeplabv3_resnet101 --sizes 960x720 --frames 21 \
        --intervals 1,5,10

(DeepLabV3 needs the torchvision extra.)  Every configuration runs the streaming engine over the
same H.264 video (decode included, no output written) in one process; speed is reported as fps
and as the ratio to per-frame measured in the same run, with the share of each stage.  The cost
of an intermediate frame relative to a keyframe follows from the two: with per-frame time t_key,
a run of N frames taking T seconds with K keyframes has t_inter = (T - K t_key) / (N - K)
(K counts inter-BMV's extra keyframe on the last frame).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from bmvseg.data.textures import moving_texture_clip
from bmvseg.evaluation.sweep import Variant
from bmvseg.evaluation.throughput import sweep
from bmvseg.models.registry import build_model, default_weights_path
from bmvseg.video.encode import X264_ONE_REF, encode_video

VARIANTS = [Variant("per-frame"), Variant("prop-flow"), Variant("prop-bmv"),
            Variant("inter-bmv", "avg")]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="enet_lite")
    ap.add_argument("--sizes", default="480x360,960x720", help="WxH list")
    ap.add_argument("--frames", type=int, default=41)
    ap.add_argument("--intervals", default="1,2,3,5,8,10")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    intervals = [int(x) for x in args.intervals.split(",")]
    print(f"# {platform.machine()}, {args.threads} torch threads, torch {torch.__version__}; "
          f"{args.frames} frames of a zooming texture, H.264 one-ref")  # fmt: skip
    for size in args.sizes.split(","):
        w, h = (int(x) for x in size.split("x"))
        frames, _ = moving_texture_clip("zoom", h, w, args.frames, seed=0, speed=1.0)
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(tmp) / "clip.mp4"
            encode_video(frames, video, options={"crf": "20", **X264_ONE_REF})
            del frames
            for name in args.models.split(","):
                weights = "default" if default_weights_path(name) else None
                model = build_model(name, weights=weights).to(memory_format=torch.channels_last)
                kw = {"conv": None, "flow_preset": "fast", "accumulate": False, "max_frames": None}
                base, runs = sweep(model, video, VARIANTS, intervals, **kw)
                report(name, size, base, runs)


def report(name: str, size: str, base, runs) -> None:
    t_key = float(np.mean([1 / b.fps for b in base]))
    print(f"\n## {name} at {size}: per-frame {1 / t_key:.2f} fps "
          f"(first {base[0].fps:.2f}, last {base[1].fps:.2f})\n")  # fmt: skip
    stages = [s for s in base[0].stage_ms if any(t.stage_ms[s] > 0.05 for t in runs + base)]
    print(
        "| scheme | k | fps | x per-frame | inter/key cost | "
        + " | ".join(f"{s} %" for s in stages)
        + " |"
    )
    print("|---|---|---|---|---|" + "---|" * len(stages))
    for t in base[:1] + runs:
        k, n = t.interval, t.frames
        keys = len(range(0, n, k)) + (t.variant.scheme == "inter-bmv" and (n - 1) % k != 0)
        inter = (t.seconds - keys * t_key) / (n - keys) / t_key if k > 1 else float("nan")
        total = sum(t.stage_ms.values())
        shares = " | ".join(f"{100 * t.stage_ms[s] / total:.0f}" for s in stages)
        print(f"| {t.variant.label} | {k} | {t.fps:.2f} | {t.fps * t_key:.2f} | "
              f"{'' if k == 1 else f'{100 * inter:.1f}%'} | {shares} |")  # fmt: skip


if __name__ == "__main__":
    main()
