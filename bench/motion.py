"""Cost and accuracy of getting frame-to-previous-frame block motion.

For each size a ~60-frame clip of a smooth texture under a known camera zoom+pan-like motion
(bmvseg.data.textures, "zoom": every cell moves differently, sub-pixel) is encoded twice: with
one reference and no B-frames (the stream the native path reads) and with x264's defaults (the
stream that needs the fallback).  Rows (ms/frame, best of ``--repeat`` runs, and the median over
frames of the per-frame median endpoint error against the true flow at the cell centres):

* plain decode (no vectors, no RGB conversion) -- the baseline every ratio uses;
* decode with ``+export_mvs`` (vectors attached, not read);
* native: the reader's fields (vectors rasterised into MotionFields);
* reencode: the reader's fallback on the x264-defaults stream (decode + in-memory re-encode);
* re-encode variants (other x264 settings) and FFmpeg's ``mestimate`` filter (EPZS, full-pel),
  timed on the frames already decoded, so their column is the estimator's own cost.

Usage: ``python bench/motion.py [--sizes 960x720 2048x1024] [--frames 60] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import io
import platform
import time
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np

from bmvseg.data.textures import block_flow, moving_texture_clip
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.estimate import X264MotionEstimator, motion_vectors, x264_estimator_options
from bmvseg.video.motion import MotionField, rasterise
from bmvseg.video.reader import VideoReader


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def decode(data: bytes, mvs: bool) -> int:
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "SLICE"
        if mvs:
            s.codec_context.options = {"flags2": "+export_mvs"}
        return sum(1 for _ in c.decode(s))


def reader_fields(data: bytes, motion: str) -> list[MotionField]:
    with VideoReader(io.BytesIO(data), motion=motion) as r:
        return [f.motion for f in r.frames(images=False)]


def decoded_frames(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as c:
        return list(c.decode(video=0))


def x264_fields(frames: list[av.VideoFrame], options: dict[str, str]) -> list[MotionField]:
    est = X264MotionEstimator(frames[0].height, frames[0].width, options=options)
    return [est.push(f) for f in frames]


def mestimate_fields(frames: list[av.VideoFrame]) -> list[MotionField]:
    """FFmpeg's motion-estimation filter; it leaves motion_x/scale unset, so src - dst is used."""
    h, w = frames[0].height, frames[0].width
    graph = av.filter.Graph()
    src = graph.add_buffer(width=w, height=h, format="yuv420p", time_base=Fraction(1, 25))
    me = graph.add("mestimate", "method=epzs:mb_size=16:search_param=7")
    sink = graph.add("buffersink")
    src.link_to(me)
    me.link_to(sink)
    graph.configure()
    out: list[MotionField] = []

    def drain() -> None:
        while True:
            try:
                frame = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            v = motion_vectors(frame)
            if v is None or not out:
                out.append(MotionField.invalid(h, w))
                continue
            v = v.copy()
            v["motion_x"] = v["src_x"].astype(np.int32) - v["dst_x"]
            v["motion_y"] = v["src_y"].astype(np.int32) - v["dst_y"]
            v["motion_scale"] = 1
            out.append(rasterise(v, h, w))

    for i, f in enumerate(frames):
        f.pts = i
        graph.push(f)
        drain()
    graph.push(None)
    drain()
    return out


def epe(fields: list[MotionField], flows: list[np.ndarray]) -> float:
    """Median over frames t >= 1 of the per-frame median endpoint error on valid cells."""
    per_frame = []
    for field, flow in zip(fields[1:], flows[1:], strict=False):  # mestimate drops the last
        err = np.linalg.norm(field.mv - block_flow(flow, field.block), axis=-1)[field.valid]
        per_frame.append(np.median(err) if err.size else np.inf)
    return float(np.median(per_frame))


def bench_size(height: int, width: int, n: int, repeat: int) -> list[tuple[str, float, str]]:
    frames, flows = moving_texture_clip("zoom", height, width, n, seed=0, speed=1.0)
    one_ref, default = io.BytesIO(), io.BytesIO()
    encode_video(frames, one_ref, options=X264_ONE_REF)
    encode_video(frames, default, options={})
    one_ref_b, default_b = one_ref.getvalue(), default.getvalue()
    rows: list[tuple[str, float, str]] = []

    t, _ = best_of(repeat, lambda: VideoReader(io.BytesIO(one_ref_b)).close())
    open_ms = t * 1000
    plain, _ = best_of(repeat, lambda: decode(one_ref_b, False))
    plain_default, _ = best_of(repeat, lambda: decode(default_b, False))
    rows.append(("plain decode (one-ref stream)", plain / n, "-"))
    t, _ = best_of(repeat, lambda: decode(one_ref_b, True))
    rows.append(("decode + export_mvs", t / n, "-"))
    with av.open(io.BytesIO(one_ref_b)) as c:
        c.streams.video[0].codec_context.options = {"flags2": "+export_mvs"}
        vecs = [motion_vectors(f) for f in c.decode(video=0)][1:]
    t, _ = best_of(repeat, lambda: [rasterise(v, height, width) for v in vecs])
    rows.append(("vectors -> MotionField only (rasterise)", t / len(vecs), "-"))
    t, fields = best_of(repeat, lambda: reader_fields(one_ref_b, "native"))
    rows.append(("native: reader fields (auto on one-ref)", t / n, f"{epe(fields, flows):.2f}"))
    rows.append(("plain decode (x264-default stream)", plain_default / n, "-"))
    t, fields = best_of(repeat, lambda: reader_fields(default_b, "auto"))
    rows.append(("reencode: reader fields (auto on default)", t / n, f"{epe(fields, flows):.2f}"))
    decoded = decoded_frames(default_b)
    variants = {
        "x264 chosen (luma, ultrafast subme=1 dia qp30)": x264_estimator_options(),
        "x264 chosen at qp=18": x264_estimator_options(qp="18"),
        "x264 ultrafast subme=0 (full-pel)": x264_estimator_options(subme="0"),
        "x264 superfast (subme=1 + partitions)": x264_estimator_options(preset="superfast"),
        "x264 veryfast (subme=2)": x264_estimator_options(preset="veryfast", subme="2"),
    }
    for name, opts in variants.items():
        t, fields = best_of(repeat, lambda o=opts: x264_fields(decoded, o))
        rows.append((f"estimator only: {name}", t / n, f"{epe(fields, flows):.2f}"))
    t, fields = best_of(repeat, lambda: mestimate_fields(decoded))
    rows.append(("estimator only: FFmpeg mestimate epzs 16", t / n, f"{epe(fields, flows):.2f}"))
    rows.append(
        (f"(once per video: VideoReader open + probe = {open_ms:.0f} ms)", float("nan"), "")
    )
    return [(name, sec * 1000, acc) for name, sec, acc in rows] + [("_plain", plain * 1000 / n, "")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["960x720", "2048x1024"])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, PyAV {av.__version__}, "
        f"{args.frames} frames, best of {args.repeat}\n"
    )
    for size in args.sizes:
        width, height = map(int, size.split("x"))
        rows = bench_size(height, width, args.frames, args.repeat)
        plain = rows.pop()[1]
        print(f"### {width}x{height}\n")
        print("| step | ms/frame | x plain decode | median EPE (px) |")
        print("|---|---:|---:|---:|")
        for name, ms, acc in rows:
            if np.isnan(ms):
                print(f"| {name} | | | |")
            else:
                print(f"| {name} | {ms:.2f} | {ms / plain:.2f} | {acc} |")
        print()


if __name__ == "__main__":
    main()
