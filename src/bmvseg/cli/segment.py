"""``bmvseg segment``: label every frame of a video with one scheme and write the results."""

from __future__ import annotations

import argparse
import contextlib
import gc
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from bmvseg.data.classes import blend
from bmvseg.errors import BmvsegError
from bmvseg.output import RunDir, claim_output_dir, input_fingerprint
from bmvseg.schemes.engine import DIS_PRESETS, SCHEMES, Engine, EngineConfig, FrameResult
from bmvseg.schemes.fusion import FUSIONS
from bmvseg.schemes.segment import DEFAULT_MODEL, build_engine
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.encode import VideoWriter
from bmvseg.video.reader import POLICIES, Frame, VideoReader

COLLECT_EVERY = 16  # frames between garbage collections (decoded frames held at most)


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """Model and scheme options shared by ``segment`` and ``benchmark``."""
    p.add_argument("--model", default=DEFAULT_MODEL, help="model name (default: %(default)s)")
    p.add_argument(
        "--weights",
        default="default",
        help="'default' (shipped or torchvision weights), a checkpoint path, or 'none'",
    )
    p.add_argument(
        "--split",
        choices=("backbone", "context"),
        help="where torchvision models are cut into feature and task network "
        "(default: after the context module; see bench/RESULTS-models.md)",
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--motion", choices=POLICIES, default="auto", help="motion source policy")
    p.add_argument("--fusion-weights", help="conv-fusion checkpoint (default: shipped one)")
    p.add_argument(
        "--flow-preset",
        choices=sorted(DIS_PRESETS),
        default="fast",
        help="OpenCV DIS preset for prop-flow (default: %(default)s)",
    )
    p.add_argument(
        "--accumulate",
        action="store_true",
        help="compose motion and warp once per frame instead of chaining warps",
    )
    p.add_argument(
        "--label-stride",
        type=int,
        default=1,
        metavar="R",
        help="arg-max at 1/R resolution, labels upsampled by nearest (default 1: full size)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        help="segment every frame of a video",
        description="Segment a video, running the feature network only on keyframes. Writes "
        "OUTDIR/labels/NNNNNN.png (uint8 class ids), OUTDIR/overlay.mp4 and OUTDIR/summary.json "
        "(written last; says whether the run completed).",
    )
    p.add_argument("video", help="input video (any format FFmpeg decodes)")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--scheme", choices=SCHEMES, default="inter-bmv")
    p.add_argument("-k", "--keyframe-interval", type=int, default=5, metavar="N")
    p.add_argument("--fusion", choices=FUSIONS, default="avg")
    add_engine_arguments(p)
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--resume", action="store_true", help="continue a run that was interrupted")
    p.add_argument("--overwrite", action="store_true", help="replace existing output")
    p.set_defaults(func=run)


def load_engine(
    args: argparse.Namespace, scheme: str, interval: int, fusion: str, timer: StageTimer
) -> Engine:
    """Model, fusion weights and engine from command-line options."""
    cfg = EngineConfig(
        scheme=scheme,
        interval=interval,
        fusion=fusion,
        accumulate=args.accumulate,
        flow_preset=args.flow_preset,
        label_stride=args.label_stride,
    )
    return build_engine(args.model, cfg, weights=args.weights, device=args.device, split=args.split,
                        fusion_weights=args.fusion_weights, timer=timer)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.keyframe_interval < 1:
        raise BmvsegError(f"--keyframe-interval must be >= 1, got {args.keyframe_interval}")
    video = Path(args.video)
    reader = VideoReader(video, motion=args.motion)
    if reader.notice:
        print(f"bmvseg: notice: {reader.notice}", flush=True)
    if reader.rotation:
        print(
            f"bmvseg: notice: {video}: the container asks players to rotate it "
            f"{reader.rotation} degrees counter-clockwise; labels and overlay keep the stored "
            f"{reader.width}x{reader.height} orientation",
            flush=True,
        )
    # What --resume must find unchanged: the input by its content (a path and a size do not
    # tell two clips apart), and every option that changes the labels.
    identity = {
        "video_fingerprint": input_fingerprint(video),
        "model": args.model,
        "weights": args.weights,
        "split": args.split,
        "scheme": args.scheme,
        "interval": args.keyframe_interval,
        "fusion": args.fusion,
        "accumulate": args.accumulate,
        "flow_preset": args.flow_preset,
        "label_stride": args.label_stride,
        "motion": args.motion,
    }
    # Everything that can refuse the run comes before the output directory is touched: a bad
    # checkpoint or a different run must not cost an existing output its files.
    timer = StageTimer()
    engine = load_engine(args, args.scheme, args.keyframe_interval, args.fusion, timer)
    out: RunDir = claim_output_dir(
        args.output,
        "segment",
        identity,
        inputs=[video],
        resume=args.resume,
        overwrite=args.overwrite,
    )
    resume_from = 0
    if args.resume:
        done = out.done_prefix()
        resume_from = done - done % args.keyframe_interval
    about = {"video": str(video.resolve()), "video_bytes": video.stat().st_size}
    out.write_json("run.json", {**about, **identity})
    palette = engine.model.palette
    overlay = None
    overlay_final = out.path / "overlay.mp4"
    overlay_tmp = out.tmp_path(overlay_final)
    if not args.no_overlay:
        overlay = VideoWriter(
            overlay_tmp, fps=reader.fps, options={"crf": "23", "preset": "veryfast"}
        )

    frames = reader.frames(images=True)
    t0 = time.perf_counter()
    count = 0
    bar = tqdm(  # only on a terminal: logs of unattended runs stay free of progress bars
        total=reader.frame_count,
        unit="frame",
        desc=f"{args.scheme} k={args.keyframe_interval}",
        disable=None,
    )
    # Decoded frames are reference cycles (see bmvseg.video.reader): collect them every few
    # frames.  Freezing the set-up (modules, model) first keeps each collection to this run's
    # young objects instead of every object torch and the model brought in.
    gc.freeze()
    try:
        for res in _resumed(frames, engine, out, resume_from):
            with timer("write"):
                if res.index >= resume_from:
                    out.write_labels(res.index, res.labels)
                if overlay is not None:
                    overlay.write(_even(blend(res.image, res.labels, palette)))
            count += 1
            if count % COLLECT_EVERY == 0:
                gc.collect()
            bar.update(1)
            bar.set_postfix(fps=f"{count / (time.perf_counter() - t0):.1f}")
        if overlay is not None:
            overlay.close()
            overlay = None
            out.commit(overlay_tmp, overlay_final)
    except OSError as exc:
        raise BmvsegError(f"cannot write to {out.path}: {exc.strerror or exc}") from exc
    finally:
        gc.unfreeze()
        bar.close()
        if overlay is not None:  # failing already: that error, not the flush's, is reported
            with contextlib.suppress(Exception):
                overlay.close()
            overlay_tmp.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    summary = {
        **about,
        **identity,
        "complete": True,
        "stream_ended_early": reader.truncated,
        "frames": count,
        "resumed_from": resume_from,
        "wall_time_s": round(wall, 3),
        "fps": round(count / wall, 3) if wall > 0 else None,
        "stage_ms_per_frame": {k: round(v, 3) for k, v in timer.mean_ms().items()},
        "motion_source": reader.motion_source,
        "motion_reason": reader.motion_reason,
        "width": reader.width,
        "height": reader.height,
        "rotation": reader.rotation,
        "device": args.device,
        "machine": platform.platform(),
        "torch": torch.__version__,
    }
    out.write_json("summary.json", summary)
    ended = " (the stream ended early: it is truncated or corrupt)" if reader.truncated else ""
    print(f"{count} frames in {wall:.1f} s ({summary['fps']} fps){ended}; output in {out.path}")
    return 0


def _even(rgb: np.ndarray) -> np.ndarray:
    """Odd sizes padded by one edge row/column: the overlay's yuv420p H.264 needs even ones."""
    h, w = rgb.shape[:2]
    return np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h | w) % 2 else rgb


def _resumed(
    frames: Iterator[Frame], engine: Engine, out: RunDir, start: int
) -> Iterator[FrameResult]:
    """Frames before ``start`` come back with the labels already on disk; the engine does the rest.

    The engine's range contract (a range from a keyframe gives the labels of a whole run) is
    what makes a resumed run's output identical to an uninterrupted one.
    """
    for fr in frames:
        if fr.index >= start:
            break
        yield FrameResult(fr.index, fr.time, out.read_labels(fr.index), False, 0, fr.image)
    else:
        return

    def rest() -> Iterator[Frame]:
        yield fr
        yield from frames

    yield from engine.run(rest(), start=start)
