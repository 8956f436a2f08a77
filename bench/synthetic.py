"""How long generating a synthetic clip takes: scene layout, rendering, and writing (H.264 + truth).

Baselines measured in the same run: the clip's own duration (real time) and encoding the
already-rendered frames with x264 alone.  Example::

    python bench/synthetic.py --size 480x360 --frames 150
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time

import cv2
import numpy as np
import torch

from bmvseg.data.synthetic import render_clip, write_clip
from bmvseg.data.synthetic.clip import DEFAULT_CODEC_OPTIONS
from bmvseg.video.encode import encode_video


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="480x360", help="WIDTHxHEIGHT")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--fps", type=float, default=15.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="OpenCV / torch threads")
    args = p.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    cv2.setNumThreads(args.threads)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    clip = render_clip(args.seed, h, w, args.frames, args.fps)
    _ = clip.scene
    t_scene = time.perf_counter() - t0

    rgb = np.empty((args.frames, h, w, 3), np.uint8)
    per_frame = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for i in range(args.frames):
        t1 = time.perf_counter()
        f = clip.frame(i)
        per_frame.append(time.perf_counter() - t1)
        rgb[i] = f.rgb
    t_render = time.perf_counter() - t0
    cpu_render = time.process_time() - cpu0

    t0 = time.perf_counter()
    encode_video(iter(rgb), io.BytesIO(), fps=args.fps, options=DEFAULT_CODEC_OPTIONS)
    t_encode = time.perf_counter() - t0

    fresh = render_clip(args.seed, h, w, args.frames, args.fps)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        write_clip(fresh, d)
    t_write = time.perf_counter() - t0

    duration = args.frames / args.fps
    ms = np.array(per_frame[1:]) * 1000  # frame 0 also makes the first textures
    print(f"synthetic clip {w}x{h}, {args.frames} frames ({duration:.1f} s), seed {args.seed}")
    print(f"  scene layout          {t_scene:7.2f} s")
    print(f"  render rgb+labels+flow {t_render:6.2f} s  ({t_render / duration:.2f}x real time; "
          f"per frame median {np.median(ms):.0f} ms, p90 {np.percentile(ms, 90):.0f} ms, "
          f"first {per_frame[0] * 1000:.0f} ms)")  # fmt: skip
    ratio = t_render / t_encode
    print(f"  render CPU time       {cpu_render:7.2f} s  (the machine is shared: wall time varies)")
    print(f"  x264 encode alone     {t_encode:7.2f} s  (render / encode = {ratio:.1f})")
    print(f"  write_clip (all)      {t_write:7.2f} s  ({t_write / duration:.2f}x real time)")


if __name__ == "__main__":
    main()
