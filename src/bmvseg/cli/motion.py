"""``bmvseg motion``: a video's block motion fields to an ``.npz`` (and optionally drawn).

The ``.npz`` holds ``mv`` (T, Hb, Wb, 2) float32 pull offsets in pixels (see
:mod:`bmvseg.video.motion`), ``valid`` (T, Hb, Wb) bool, ``pict_type`` (T,) str, ``time`` (T,)
float64 seconds, ``motion_source`` / ``motion_reason`` (str), ``block``, ``fps``, ``width``,
``height``.  T is the number of decoded frames.  Outputs are checked before anything is read (not
an input, not each other, not a directory or special file: :mod:`bmvseg.output.files`), written
under a temporary name in the destination's directory and renamed at the end, so a failed run
leaves no file behind.
"""

from __future__ import annotations

import argparse
import io
import math
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import cv2
import numpy as np

from bmvseg import progress
from bmvseg.cli.options import add_progress_arguments
from bmvseg.errors import BmvsegError, VideoError
from bmvseg.output.files import Staged, check_outputs
from bmvseg.video.motion import MotionField
from bmvseg.video.motion_source import POLICIES
from bmvseg.video.reader import VideoReader

DEMO_SIZE = (240, 320)  # height, width of the generated demo clip
DEMO_FRAMES = 30
MAX_ARROW_SCALE = 100.0  # beyond this every arrow leaves the frame (and 1e300 overflows cv2)


def register(subparsers: argparse._SubParsersAction) -> None:
    """The ``motion`` subcommand's arguments."""
    p = subparsers.add_parser(
        "motion",
        help="read a video's block motion vectors (frame t relative to t-1) into an .npz",
        description="Read the block motion of every frame relative to the previous one, from "
        "the compressed stream's own vectors where they are exactly that, else by re-encoding "
        "in memory.  Without VIDEO (or with --demo) a clip with known motion is generated.",
        epilog="examples:\n  bmvseg motion video.mp4 -o motion.npz --draw arrows.mp4\n"
        "  bmvseg motion --demo --draw demo_arrows.mp4\n",
    )
    p.add_argument("video", nargs="?", help="input video, any format FFmpeg decodes (default: "
                   "the generated clip of --demo)")  # fmt: skip
    p.add_argument("-o", "--output", help="output .npz: mv, valid, pict_type, time, ... "
                   "(default: not written; give -o and/or --draw)")  # fmt: skip
    p.add_argument(
        "--motion",
        choices=POLICIES,
        default="auto",
        help="where motion comes from: the stream's vectors when exact (auto, default), always "
        "the stream's vectors (native), or re-encoding (reencode)",
    )
    p.add_argument("--block", type=int, choices=(16, 8, 4), default=16, help="cell size in px")
    p.add_argument("--stream", type=int, metavar="N",
                   help="video stream number (default: the largest / the default one)")
    p.add_argument(
        "--draw",
        metavar="OUT.mp4",
        help="also write the video with each valid cell's vector drawn as an arrow from the "
        "cell centre toward where its content was in the previous frame (scaled, see "
        "--arrow-scale); intra cells get a red dot (default: no drawing)",
    )
    p.add_argument("--arrow-scale", type=float, default=4.0, help="arrow length per pixel")
    p.add_argument(
        "--demo",
        action="store_true",
        help=f"use a generated {DEMO_SIZE[1]}x{DEMO_SIZE[0]} clip of a textured object moving "
        "over a textured background instead of VIDEO",
    )
    add_progress_arguments(p)
    p.set_defaults(func=run)


def demo_clip() -> io.BytesIO:
    """An in-memory one-reference H.264 clip with known motion (the README's first command)."""
    from bmvseg.data.textures import moving_texture_clip
    from bmvseg.video.encode import X264_ONE_REF, encode_video

    frames, _ = moving_texture_clip("object", *DEMO_SIZE, DEMO_FRAMES, seed=0, speed=2.0)
    buf = io.BytesIO()
    encode_video(frames, buf, fps=15, options=X264_ONE_REF)
    buf.seek(0)
    buf.name = "demo clip"  # type: ignore[attr-defined]
    return buf


def draw_field(image: np.ndarray, field: MotionField, scale: float = 4.0) -> np.ndarray:
    """RGB image with arrows from each valid cell centre to ``centre + scale * mv``.

    The arrow points where the cell's content came from (the pull convention), so an object
    moving right gets arrows pointing left.
    """
    out = np.ascontiguousarray(image.copy())
    b = field.block
    h, w = out.shape[:2]
    for r, c in zip(*np.nonzero(field.valid), strict=True):
        cx, cy = (c + 0.5) * b, (r + 0.5) * b
        if cx >= w or cy >= h:
            continue
        dx, dy = field.mv[r, c]
        tip = (int(round(cx + scale * dx)), int(round(cy + scale * dy)))
        cv2.arrowedLine(out, (int(cx), int(cy)), tip, (255, 255, 0), 1, cv2.LINE_AA, 0, 0.3)
    for r, c in zip(*np.nonzero(~field.valid), strict=True):
        cx, cy = int((c + 0.5) * b), int((r + 0.5) * b)
        if cx < w and cy < h:
            cv2.circle(out, (cx, cy), 1, (255, 0, 0), -1)
    return out


def _check_muxer(dest: str, container_format: str | None) -> None:
    """Refuse a ``--draw`` name no muxer that takes H.264 knows, before any work is done.

    Opening a container and adding a stream writes nothing; the muxer is guessed from the
    extension exactly as the real write will guess it.
    """
    import av

    probe = Staged()
    try:
        tmp = probe.temp_for(dest)
        try:
            with av.open(str(tmp), mode="w", format=container_format) as out:
                out.add_stream("libx264", rate=15)
        except ValueError as exc:  # unknown extension, or a muxer that cannot hold H.264
            raise BmvsegError(f"--draw {dest}: cannot write an H.264 video there ({exc})") from None
    finally:
        probe.discard()


@contextmanager
def _writing(dest: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:  # a full disk, a lost mount: one line naming the output
        raise BmvsegError(f"cannot write {dest}: {exc.strerror or exc}") from None


def run(args: argparse.Namespace) -> int:
    """Read a video's motion fields into an .npz (and draw them), outputs checked first."""
    if args.video is None and not args.demo:
        args.demo = True
    if args.video is not None and args.demo:
        raise BmvsegError("give either VIDEO or --demo, not both")
    if not args.output and not args.draw:
        raise BmvsegError("nothing to write: give -o OUT.npz and/or --draw OUT.mp4")
    if not (math.isfinite(args.arrow_scale) and abs(args.arrow_scale) <= MAX_ARROW_SCALE):
        raise BmvsegError(
            f"--arrow-scale must be a finite number within +-{MAX_ARROW_SCALE:g}, "
            f"got {args.arrow_scale!r}"
        )
    outputs = [x for x in (args.output, args.draw) if x]
    check_outputs(outputs, [] if args.demo else [args.video])
    draw_format = None if Path(args.draw or "").suffix else "mp4"  # no extension: MP4
    if args.draw:
        _check_muxer(args.draw, draw_format)
    source = demo_clip() if args.demo else args.video
    with Staged() as staged:
        with ExitStack() as stack:
            reader = stack.enter_context(VideoReader(source, motion=args.motion, block=args.block,
                                                       stream=args.stream))
            if reader.notice and not args.quiet:
                print(f"bmvseg motion: notice: {reader.notice}", file=sys.stderr)
            fields: list[MotionField] = []
            picts: list[str] = []
            times: list[float] = []
            frames = stack.enter_context(progress.bar(
                reader.frames(images=bool(args.draw)), total=reader.frame_count, unit="frame",
                desc="motion"))  # fmt: skip

            def drawn() -> Iterator[np.ndarray]:
                for frame in frames:
                    fields.append(frame.motion)
                    picts.append(frame.pict_type)
                    times.append(frame.time)
                    if args.draw:
                        yield draw_field(frame.image, frame.motion, args.arrow_scale)

            if args.draw:
                from bmvseg.video.encode import encode_video

                draw_tmp = staged.temp_for(args.draw)
                encode_video(
                    drawn(),
                    draw_tmp,
                    fps=reader.fps,
                    options={"crf": "20"},
                    container_format=draw_format,
                )
            else:
                for _ in drawn():
                    pass
            if reader.truncated:
                raise VideoError(
                    f"{reader.name}: truncated or corrupt stream, decoding stopped after "
                    f"{len(fields)} of {reader.frame_count} frames"
                )
            if not fields:
                raise VideoError(f"{reader.name}: no frame could be decoded")
            if args.output:
                npz_tmp = staged.temp_for(args.output)
                with _writing(args.output), open(npz_tmp, "wb") as fh:
                    np.savez_compressed(
                        fh,
                        mv=np.stack([f.mv for f in fields]).astype(np.float32),
                        valid=np.stack([f.valid for f in fields]),
                        pict_type=np.array(picts, dtype="<U1"),
                        time=np.array(times, np.float64),
                        motion_source=np.array(reader.motion_source),
                        motion_reason=np.array(reader.motion_reason),
                        block=np.array(args.block),
                        fps=np.array(reader.fps),
                        width=np.array(reader.width),
                        height=np.array(reader.height),
                    )
            staged.commit()
            hb, wb = fields[0].grid_shape
            valid = np.mean([f.valid.mean() for f in fields[1:]]) if len(fields) > 1 else 0.0
            written = " and ".join(x for x in (args.output, args.draw) if x)
            print(
                f"wrote {written}: {len(fields)} frames, {hb}x{wb} cells of {args.block}px, "
                f"{valid:.0%} valid after frame 0; motion {reader.motion_source} "
                f"({reader.motion_reason})"
            )
    return 0
