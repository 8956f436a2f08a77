"""Micro-costs of the per-frame kernels of an intermediate frame, old way against new way.

Six sections (pick with ``--only``), each printed as a Markdown table:

* ``labels``: full-size labels from low-resolution logits: the dense path (bilinear upsample
  to full size, then arg-max: what ``Engine.result`` did) against
  :func:`bmvseg.schemes.labels.labels_from_lowres_logits`, with the share of cells that needed
  full-resolution work and the number of pixels whose labels differ (ties only are allowed).
  Logits are "real-looking" (smooth class regions + margin + noise) at stride 4 and 8, and the
  shipped ``enet_lite`` model's own logits on CamVid test frames when ``--camvid`` is given.
* ``warp``: ``grid_sample`` (NCHW and channels-last input, one map and a batched pair) against
  :func:`bmvseg.warp.warp` (fused weighted gather), with the largest difference.
* ``fusion``: avg fusion of two warped (channels-last) maps: ``ff * a + fb * b`` as two passes
  (what :func:`bmvseg.schemes.fusion.fuse` did), the same into one buffer in place, and
  ``torch.lerp`` (one pass), at the channel counts of class space and of feature space.
* ``frame``: one inter-BMV intermediate frame of the shipped model at 960x540 (two warps,
  fusion, task network, labels), yesterday's kernels against today's, and how many labels
  agree (the warps differ by float rounding, so a few boundary pixels may flip).
* ``estimate``: the re-encoder's cost per frame against the median end-point error of its
  vectors on generated clips with exact motion (zoom and pan), for x264 settings.
* ``writer`` (with ``--video``): what a run writes for each frame, on a real clip and the
  shipped model's labels of it: the overlay composed in RGB (decoded picture to RGB, blend,
  the encoder's conversion back to 4:2:0) against on the decoded YUV planes
  (:mod:`bmvseg.output.yuv_overlay`), each through x264 as a run encodes it; and the label
  PNG at OpenCV's default and at zlib levels 0-9.

Timings are medians (``--repeat``) with the two compared variants interleaved; the machine's
load average is printed, compare rows within one run.

Usage: ``python bench/kernel_costs.py [--only labels warp fusion frame estimate writer]
[--repeat 7] [--camvid DIR] [--video CLIP]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from bmvseg.data.textures import block_flow, moving_texture_clip
from bmvseg.schemes.labels import DENSE_ABOVE, labels_and_share
from bmvseg.video.estimate import X264MotionEstimator, x264_estimator_options
from bmvseg.warp import sampler, warp, warp_with


def medians(repeat: int, *fns: Callable[[], object]) -> list[float]:
    """Median wall time (ms) of each function, run interleaved after one warm-up each."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) * 1000 for t in times]


def blob_logits(k: int, h: int, w: int, seed: int = 0, cell: int = 10) -> torch.Tensor:
    """Scores shaped like a segmentation network's: smooth class regions, a margin, noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, k, max(2, h // cell), max(2, w // cell), generator=g)
    regions = F.interpolate(coarse, (h, w), mode="bicubic", align_corners=False)[0].argmax(0)
    one_hot = F.one_hot(regions, k).permute(2, 0, 1)[None].float()
    return 4.0 * one_hot + 0.3 * torch.randn(1, k, h, w, generator=g)


def dense_labels(logits: torch.Tensor, hw: tuple[int, int]) -> np.ndarray:
    up = F.interpolate(logits, hw, mode="bilinear", align_corners=False)
    return up[0].argmax(0).to(torch.uint8).numpy()


def labels_row(name: str, logits: torch.Tensor, hw: tuple[int, int], repeat: int) -> str:
    """Dense, sparse on every frame, and the per-frame choice (dense above DENSE_ABOVE)."""
    ref = dense_labels(logits, hw)
    ours, share = labels_and_share(logits, hw)
    dense_ms, sparse_ms, chosen_ms = medians(
        repeat,
        lambda: dense_labels(logits, hw),
        lambda: labels_and_share(logits, hw, dense_above=1.0),
        lambda: labels_and_share(logits, hw),
    )
    diff = int((ours != ref).sum())
    path = "dense" if share > DENSE_ABOVE else "sparse"
    return (
        f"| {name} | {dense_ms:.1f} | {sparse_ms:.1f} | {chosen_ms:.1f} ({path}) | "
        f"{chosen_ms / dense_ms:.2f} | {100 * share:.1f} | {diff} |"
    )


def camvid_logits(directory: Path, sizes: list[tuple[int, int]], frames: int):
    """The shipped model's low-res logits on CamVid test frames resized to each size."""
    import cv2

    from bmvseg.models.registry import build_model

    model = build_model("enet_lite")
    files = sorted(p for p in directory.iterdir() if p.suffix == ".png")
    for path in files[:: max(1, len(files) // frames)][:frames]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        for h, w in sizes:
            image = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
            with torch.inference_mode():
                feats = model.features(model.preprocess(image))
                raw = model.head(feats[0])  # the task network before its upsample
            yield f"enet_lite {path.stem} {w}x{h}", raw, (h, w)


def bench_labels(repeat: int, camvid: Path | None) -> None:
    print("## labels: dense upsample + arg-max vs sparse vs the per-frame choice (ms per frame)\n")
    print("| logits | dense | sparse | chosen | chosen / dense | cells disagreeing (%) "
          "| pixels differing |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for h, w in [(540, 960), (720, 960)]:
        for stride in (4, 8):
            for k in (11, 19):
                logits = blob_logits(k, -(-h // stride), -(-w // stride), seed=k)
                # Channels-last, as a 1x1-conv head on channels-last features returns them
                # (the dense path is fastest on that layout too).
                logits = logits.clone(memory_format=torch.channels_last)
                print(labels_row(f"blobs K={k} stride {stride} -> {w}x{h}", logits, (h, w), repeat))
    h, w = 540, 960
    for k in (11, 19):  # more and more uncertain scores, up to random ones (an untrained net)
        g = torch.Generator().manual_seed(k)
        for cell, noise in [(6, 0.3), (3, 1.0), (2, 2.0), (None, None)]:
            low = (135, 240)
            if cell is None:
                logits, name = torch.randn(1, k, *low, generator=g), "random"
            else:
                logits = blob_logits(k, *low, seed=k, cell=cell)
                logits = logits + noise * torch.randn(logits.shape, generator=g)
                name = f"blobs cell {cell} noise {noise}"
            # A fresh channels-last copy: the blobs' permuted one-hot leaves odd strides
            # (batch stride 19) on which the upsample kernel runs 4x slower.
            logits = logits.clone(memory_format=torch.channels_last)
            print(labels_row(f"{name} K={k} stride 4 -> {w}x{h}", logits, (h, w), repeat))
    if camvid is not None:
        with torch.inference_mode():
            for name, logits, hw in camvid_logits(camvid, [(540, 960), (720, 960)], 3):
                print(labels_row(name, logits, hw, repeat))
    print()


def gs(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Yesterday's warp: grid_sample on the normalised grid of the convention."""
    n, _, h, w = x.shape
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * (2.0 / h) - 1.0
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * (2.0 / w) - 1.0
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    grid = base + flow.permute(0, 2, 3, 1) * torch.tensor([2.0 / w, 2.0 / h])
    return F.grid_sample(x, grid.expand(n, -1, -1, -1), "bilinear", "border", align_corners=False)


def bench_warp(repeat: int) -> None:
    print("## warp: grid_sample vs fused gather (ms per call)\n")
    print("| map | grid_sample NCHW | grid_sample CL | warp CL | warp NCHW | sampler | "
          "pair: grid_sample batched CL | pair: 2 x warp | max diff |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c, h, w, label in [
        (64, 135, 240, "enet_lite 960x540 (64 ch, stride 4)"),
        (64, 180, 240, "enet_lite 960x720 (64 ch, stride 4)"),
        (256, 90, 120, "R101 context split 960x720 (256 ch, stride 8)"),
        (2048, 90, 120, "R101 backbone 960x720 (2048 ch, stride 8)"),
    ]:
        print(warp_row(c, h, w, label, repeat))
    print()


def warp_row(c: int, h: int, w: int, label: str, repeat: int) -> str:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1, c, h, w, generator=g)
    acl = a.contiguous(memory_format=torch.channels_last)
    bcl = torch.randn(1, c, h, w, generator=g).contiguous(memory_format=torch.channels_last)
    pair = torch.cat([acl, bcl])
    fa, fb = torch.randn(1, 2, h, w, generator=g) * 3, torch.randn(1, 2, h, w, generator=g) * 3
    fab = torch.cat([fa, fb])
    ms = medians(
        repeat,
        lambda: gs(a, fa),
        lambda: gs(acl, fa),
        lambda: warp(acl, fa),
        lambda: warp(a, fa),
        lambda: sampler(fa),
        lambda: gs(pair, fab),
        lambda: (warp(acl, fa), warp(bcl, fb)),
    )
    diff = float((warp_with(acl, sampler(fa)) - gs(a, fa)).abs().max())
    return f"| {label} | " + " | ".join(f"{m:.2f}" for m in ms) + f" | {diff:.1e} |"


def bench_fusion(repeat: int) -> None:
    print("## fusion: avg of two channels-last maps at 960x540, stride 4 (ms per call)\n")
    print("| map | f * a + g * b | in place | lerp | lerp / first | max diff |")
    print("|---|---:|---:|---:|---:|---:|")
    for c, label in [(19, "19 logits (class space)"), (64, "enet_lite features (64 ch)"),
                     (768, "SegFormer-B2 context features (768 ch)")]:  # fmt: skip
        print(fusion_row(c, label, repeat))
    print()


def fusion_row(c: int, label: str, repeat: int, a: float = 0.7) -> str:
    g = torch.Generator().manual_seed(0)
    f, b = (torch.randn(1, c, 135, 240, generator=g).contiguous(
        memory_format=torch.channels_last) for _ in range(2))  # fmt: skip
    ms = medians(repeat, lambda: torch.add(f * a, b, alpha=1 - a),
                 lambda: torch.mul(f, a).add_(b, alpha=1 - a),
                 lambda: torch.lerp(b, f, a))  # fmt: skip
    diff = float((torch.add(f * a, b, alpha=1 - a) - torch.lerp(b, f, a)).abs().max())
    cells = " | ".join(f"{m:.2f}" for m in ms)
    return f"| {label} | {cells} | {ms[2] / ms[0]:.2f} | {diff:.1e} |"


ESTIMATOR_VARIANTS: dict[str, dict[str, str]] = {
    "shipped (ultrafast subme=1 dia qp30 ...)": {},
    "dct-decimate=0": {"dct-decimate": "0"},
    "qp=24": {"qp": "24"},
    "qp=36": {"qp": "36"},
    "qp=33": {"qp": "33"},
    "subme=0 (full-pel)": {"subme": "0"},
    "me=hex": {"me": "hex"},
    "merange=4": {"merange": "4"},
    "no-fast-pskip": {"no-fast-pskip": "1"},
    "psy=0": {"psy": "0"},
}


def estimate_clip(extra: dict[str, str], frames: list[av.VideoFrame], flows: list[np.ndarray]):
    """CPU ms per pushed frame (after the first) and the median per-frame median EPE."""
    h, w = frames[0].height, frames[0].width
    est = X264MotionEstimator(h, w, options=x264_estimator_options(**extra))
    est.push(frames[0])
    t0 = time.process_time()  # CPU time: steadier than wall time on a shared machine
    fields = [est.push(f) for f in frames[1:]]
    ms = (time.process_time() - t0) * 1000 / len(fields)
    errs = []
    for field, flow in zip(fields, flows[1:], strict=True):
        err = np.linalg.norm(field.mv - block_flow(flow, field.block), axis=-1)[field.valid]
        errs.append(np.median(err) if err.size else np.inf)
    return ms, float(np.median(errs))


def bench_estimate(repeat: int, size: tuple[int, int], n: int) -> None:
    h, w = size
    clips = {}
    for name, kind, speed in [("zoom 1%/frame", "zoom", 1.0), ("pan 3.3 px", "translate", 3.3)]:
        rgb, flows = moving_texture_clip(kind, h, w, n, seed=0, speed=speed)
        # What the reader hands the estimator: decoded 4:2:0 frames.
        frames = [
            av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in rgb
        ]
        clips[name] = (frames, flows)
    print(f"## re-encoded motion at {w}x{h}, {n} frames (CPU ms/frame, best of {repeat}; EPE px)\n")
    print("| x264 setting | " + " | ".join(f"{c} ms | {c} EPE" for c in clips) + " |")
    print("|---|" + "---:|---:|" * len(clips))
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(repeat):  # interleaved: load changes hit every setting alike
        for name, extra in ESTIMATOR_VARIANTS.items():
            for clip, (frames, flows) in clips.items():
                runs.setdefault((name, clip), []).append(estimate_clip(dict(extra), frames, flows))
    for name in ESTIMATOR_VARIANTS:
        cells = []
        for clip in clips:
            r = runs[name, clip]
            cells += [f"{min(x[0] for x in r):.2f}", f"{r[0][1]:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print()


def bench_frame(repeat: int, camvid: Path | None) -> None:
    """One inter-BMV intermediate frame of the shipped model at 960x540, warps to labels."""
    from bmvseg.data.textures import smooth_texture
    from bmvseg.models.registry import build_model
    from bmvseg.schemes.labels import labels_from_lowres_logits

    model = build_model("enet_lite")
    h, w = 540, 960
    image = smooth_texture(h, w, seed=0)
    if camvid is not None:
        import cv2

        first = sorted(p for p in camvid.iterdir() if p.suffix == ".png")[0]
        image = cv2.resize(cv2.cvtColor(cv2.imread(str(first)), cv2.COLOR_BGR2RGB), (w, h))
    with torch.inference_mode():
        (key,) = model.features(model.preprocess(image))  # channels-last, as the engine has it
        g = torch.Generator().manual_seed(0)
        flow = torch.randn(1, 2, *key.shape[-2:], generator=g) * 0.3 + 1.5
        chained = key.contiguous()  # yesterday's chains hold grid_sample's NCHW output

        def old() -> np.ndarray:
            fused = 0.5 * gs(chained, flow) + 0.5 * gs(chained, -flow)
            logits = model.task((fused,), (h, w))
            return logits[0].argmax(0).to(torch.uint8).numpy()

        def new() -> np.ndarray:
            fused = 0.5 * warp(key, flow) + 0.5 * warp(key, -flow)
            return labels_from_lowres_logits(model.head(fused), (h, w))

        same = float((old() == new()).mean())
        old_ms, new_ms = medians(repeat, old, new)
    print("## one intermediate frame, enet_lite 960x540: two warps + fusion + task + labels\n")
    print("| path | ms | labels equal to the old path (%) |")
    print("|---|---:|---:|")
    print(f"| grid_sample (NCHW chain) + full upsample + arg-max | {old_ms:.1f} | |")
    print(f"| fused gather (channels-last) + sparse labels | {new_ms:.1f} | {100 * same:.3f} |")
    print()


def bench_writer(repeat: int, video: Path, n: int) -> None:
    import io

    import cv2

    import bmvseg
    from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE, ClassSet, overlay_frame
    from bmvseg.output.yuv_overlay import YuvOverlay
    from bmvseg.video.encode import OVERLAY_OPTIONS, VideoWriter

    results = [r for r, _ in zip(bmvseg.segment(str(video), scheme="per-frame"), range(n),
                                 strict=False)]  # fmt: skip
    pictures = [r.frame.i420() for r in results]
    if any(p is None for p in pictures):
        print(f"## writer: {video} does not decode to 8-bit 4:2:0; the RGB path only\n")
        return
    classes = ClassSet(CAMVID_CLASSES, CAMVID_PALETTE)
    legend, yuv = classes.legend(), YuvOverlay(classes.palette, classes.legend())

    def rgb_path() -> None:
        with VideoWriter(io.BytesIO(), fps=25.0, options=OVERLAY_OPTIONS) as w:
            for res, pic in zip(results, pictures, strict=True):
                rgb = av.VideoFrame.from_ndarray(pic, format="yuv420p").to_ndarray(format="rgb24")
                w.write(overlay_frame(rgb, res.labels, classes.palette, res.index % 10 == 0,
                                      legend), time=res.time)  # fmt: skip

    def yuv_path() -> None:
        with VideoWriter(io.BytesIO(), fps=25.0, options=OVERLAY_OPTIONS) as w:
            for res, pic in zip(results, pictures, strict=True):
                w.write_i420(yuv.draw(pic, res.labels, res.index % 10 == 0), time=res.time)

    rgb_ms, yuv_ms = (t / len(results) for t in medians(repeat, rgb_path, yuv_path))
    h, w = results[0].labels.shape
    print(f"## writer: {video.name} {w}x{h}, {len(results)} frames, enet_lite labels "
          "(ms per frame)\n")  # fmt: skip
    print("| overlay (compose + x264 ultrafast) | ms |\n|---|---:|")
    print(f"| RGB: picture to RGB, blend, encoder converts back | {rgb_ms:.2f} |")
    print(f"| YUV: blend on the decoded planes | {yuv_ms:.2f} |\n")
    print("| label PNG | ms | bytes |\n|---|---:|---:|")
    levels: list[tuple[str, list[int]]] = [("OpenCV default (what runs write)", [])]
    levels += [(f"zlib level {z}", [cv2.IMWRITE_PNG_COMPRESSION, z]) for z in (0, 1, 3, 6, 9)]
    for name, params in levels:
        (ms,) = medians(repeat, lambda p=params: [cv2.imencode(".png", r.labels, p)
                                                  for r in results])  # fmt: skip
        size = np.mean([len(cv2.imencode(".png", r.labels, params)[1]) for r in results])
        print(f"| {name} | {ms / len(results):.2f} | {size:.0f} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=["labels", "warp", "fusion", "frame",
                                                            "estimate", "writer"])
    ap.add_argument("--video", type=Path, help="a real clip (the writer section)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--camvid", type=Path, help="a folder of CamVid test PNGs (real logits)")
    ap.add_argument("--size", default="960x540", help="WxH of the estimator clips")
    ap.add_argument("--frames", type=int, default=30, help="frames of the estimator clips")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({args.threads} thread), "
        f"load average at start {os.getloadavg()[0]:.1f}\n"
    )
    if "labels" in args.only:
        bench_labels(args.repeat, args.camvid)
    if "warp" in args.only:
        bench_warp(args.repeat)
    if "fusion" in args.only:
        bench_fusion(args.repeat)
    if "frame" in args.only:
        bench_frame(args.repeat, args.camvid)
    if "estimate" in args.only:
        w, h = map(int, args.size.split("x"))
        bench_estimate(args.repeat, (h, w), args.frames)
    if "writer" in args.only and args.video is not None:
        bench_writer(args.repeat, args.video, args.frames)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
