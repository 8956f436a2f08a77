"""The CPU-side ceiling: frames per second of everything but the model, on one core.

    python bench/ceiling.py --video ../shared/data/real/bigbuckbunny.mp4 --resize 960x540
    python bench/ceiling.py --video ../shared/data/real/Megamind.avi

Why: with the networks on a GPU (or free), a run is bounded by what stays on the CPU for every
frame: decoding with the codec's motion vectors (or re-encoding for them), filling the vectors
into flows on the model's feature grid, and writing the outputs (label PNG, overlay video).
Each is timed here on its own, the process pinned to one core (``sched_setaffinity``, one
torch and one OpenCV thread, x264 with one thread), so ``1000 / total ms`` is the frames per
second one core sustains and N cores roughly N times that (Ray workers, one per core).

The labels written are the shipped model's on the clip's keyframes (every ``--interval``-th
frame, computed before the timing starts) held over the frames after them: real class maps
of the footage, so PNG and x264 see what a run writes.  Stages are timed sequentially on the
same frames; nothing overlaps.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import torch

from bmvseg.data.classes import ClassSet
from bmvseg.output.frames import FrameSink, OverlayEncoder, label_png
from bmvseg.output.rundir import claim_output_dir
from bmvseg.run.build import build_engine
from bmvseg.run.options import RunOptions
from bmvseg.schemes.base import FrameResult
from bmvseg.video.encode import OVERLAY_OPTIONS
from bmvseg.video.reader import VideoReader
from bmvseg.warp.warp import field_to_flows


def pin_to_one_core() -> int:
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    return core


def resized_clip(video: str, size: str | None, frames: int, tmp: str) -> Path:
    """``--resize``: the first frames written as H.264 with 3 references (as bench/throughput)."""
    if size is None:
        return Path(video)
    import throughput  # the same clip bench/throughput.py measures on

    return throughput.clip_from(video, size, frames, tmp)[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", required=True, help="a clip")
    ap.add_argument("--resize", metavar="WxH", help="decode, resize and write as H.264 first")
    ap.add_argument("--frames", type=int, default=101, help="frames timed")
    ap.add_argument("--interval", type=int, default=10, help="frames per label map held")
    ap.add_argument("--model", default="enet_lite", help="whose labels and feature grid")
    args = ap.parse_args()
    core = pin_to_one_core()
    with tempfile.TemporaryDirectory() as tmp:
        path = resized_clip(args.video, args.resize, args.frames, tmp)
        opts = RunOptions(model=args.model, weights="default")
        engine = build_engine(opts)
        model = engine.model
        keys, grids = {}, None
        with VideoReader(path) as reader, torch.inference_mode():  # labels first, untimed
            for frame, _ in zip(reader.frames(), range(args.frames), strict=False):
                if frame.index % args.interval == 0:
                    feats = engine.features(frame)
                    keys[frame.index] = engine.labels(feats, frame.image.shape[:2])[0]
                    grids = [(tuple(f.shape[-2:]), s)
                             for f, s in zip(feats, model.strides, strict=True)]  # fmt: skip

        ms = {"decode + motion": 0.0, "motion fill": 0.0, "label PNG": 0.0, "overlay": 0.0}
        frames = []
        with VideoReader(path) as reader:
            it = iter(reader.frames())
            for _ in range(args.frames):
                t0 = time.perf_counter()
                frame = next(it, None)
                ms["decode + motion"] += time.perf_counter() - t0
                if frame is None:
                    break
                frames.append(frame)
            motion_source = reader.motion_source
        t0 = time.perf_counter()
        for frame in frames:
            field_to_flows(frame.motion, grids)
        ms["motion fill"] = time.perf_counter() - t0
        out = claim_output_dir(Path(tmp) / "out", "segment", {"bench": "ceiling"})
        sink = FrameSink(out, overlay=False)  # label files as a run writes them
        results = [FrameResult(f.index, f.time, keys[f.index - f.index % args.interval], 0, f)
                   for f in frames]  # fmt: skip
        with open(Path(tmp) / "overlay.mp4", "wb") as fh:
            overlay = OverlayEncoder(fh, reader.fps, ClassSet.of(model),
                                     options={**OVERLAY_OPTIONS, "threads": "1"})  # fmt: skip
            for res in results:
                t0 = time.perf_counter()
                sink.write_png(res.index, label_png(res.labels))
                t1 = time.perf_counter()
                overlay.add(res)
                ms["overlay"] += time.perf_counter() - t1
                ms["label PNG"] += t1 - t0
            t0 = time.perf_counter()
            overlay.close()
            ms["overlay"] += time.perf_counter() - t0

    n = len(frames)
    per = {k: 1000 * v / n for k, v in ms.items()}
    total = sum(per.values())
    w, h = reader.width, reader.height
    print(f"# {platform.machine()} {platform.processor() or ''}, pinned to core {core} of "
          f"{os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {Path(args.video).name} "
          f"{w}x{h}, {n} frames, motion from {motion_source}; labels of "
          f"{args.model}\n")  # fmt: skip
    print("| stage | ms per frame |\n|---|---:|")
    for k, v in per.items():
        print(f"| {k} | {v:.2f} |")
    print(f"| **total** | **{total:.2f}** |\n\nceiling on one core: {1000 / total:.0f} fps")


if __name__ == "__main__":
    main()
