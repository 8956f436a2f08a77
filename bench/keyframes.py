"""Where each keyframe placement puts its keyframes on footage with cuts and from a static camera.

Clips are made in memory from CamVid's 15 Hz labelled run (``val/``, 101 frames of 0016E5):

* ``run``: the run as it is (a car driving, no cut);
* ``cuts``: three pieces of the run joined out of order, frames 0-42, 70-100, 43-69 (hard cuts
  at clip frames 43 and 74, neither a multiple of 5 or 10);
* ``static``: frame 50 held for 60 frames with sensor-like noise (Gaussian, sigma 2 grey
  levels): a parked camera.

Each is encoded twice, with one reference frame and no B-frames (the vectors are read natively)
and with x264's defaults (B-frames, an I-frame at each cut: the motion comes from the
re-encoder), and read with :class:`~bmvseg.video.reader.VideoReader`.  For every interval the
keyframes of fixed placement, adaptive placement (spending its budget) and adaptive placement
with ``spend=False`` are printed with their reasons, and whether each cut got a keyframe.  No
network runs: accuracy is the benchmark's job (``bmvseg benchmark --keyframes ...``).

:func:`real_clips` makes the real footage with cuts that ``bench/placement.py --real`` scores
(``Megamind.avi`` and :data:`JOINS` of it with ``bigbuckbunny.mp4``).

Usage: ``python bench/keyframes.py [--root ../shared/data/camvid] [--intervals 5 10]``
"""

from __future__ import annotations

import argparse
import io
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bmvseg.data.camvid import video_run
from bmvseg.schemes.keyframes import AdaptiveSchedule, FixedSchedule, signal
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.reader import Frame, VideoReader

ABBREV = {
    "start": "s",
    "interval": "i",
    "anchor": "a",
    "max-interval": "m",
    "cut": "C",
    "iframe": "I",
    "change": "c",
    "spare": "p",
}


def clips(root: str) -> dict[str, tuple[list[np.ndarray], list[int]]]:
    """Name -> (RGB frames, indices of the hard cuts)."""
    run = [np.asarray(Image.open(p).convert("RGB")) for p in video_run(root)]
    rng = np.random.default_rng(0)
    still = run[50].astype(np.float32)
    static = [
        np.clip(still + rng.normal(0, 2, still.shape), 0, 255).astype(np.uint8) for _ in range(60)
    ]
    return {
        "run": (run, []),
        "cuts": (run[0:43] + run[70:101] + run[43:70], [43, 74]),
        "static": (static, []),
    }


# Real footage joined at chosen offsets (``../shared/data/real/``): (source, first, last frame)
# per piece.  Megamind's shots are 1-97, 98-153, 154-199 and 200-269; Big Buck Bunny is one
# shot.  The pieces alternate, so every join is a hard cut.
JOINS = {
    "joined-a": [("bigbuckbunny.mp4", 0, 29), ("Megamind.avi", 2, 71), ("bigbuckbunny.mp4", 30, 54),
                 ("Megamind.avi", 100, 144), ("bigbuckbunny.mp4", 55, 84),
                 ("Megamind.avi", 201, 247), ("bigbuckbunny.mp4", 85, 131)],
    "joined-b": [("Megamind.avi", 2, 21), ("bigbuckbunny.mp4", 0, 24), ("Megamind.avi", 22, 76),
                 ("bigbuckbunny.mp4", 25, 61), ("Megamind.avi", 155, 177),
                 ("bigbuckbunny.mp4", 62, 101), ("Megamind.avi", 205, 235),
                 ("bigbuckbunny.mp4", 102, 131)],
}  # fmt: skip
JOIN_SIZE = (640, 360)  # each source centre-cropped to 16:9, then resized


def real_clips(root: str | Path, tmp: Path) -> dict[str, tuple[Path, list[int]]]:
    """Name -> (video, its hard cuts): ``Megamind.avi`` as shipped, and the :data:`JOINS`
    re-encoded by libx264 (its defaults: B-frames, an I-frame at each cut) into ``tmp``."""
    import av
    import cv2

    root = Path(root)
    decoded: dict[str, list[np.ndarray]] = {}
    for name in {src for pieces in JOINS.values() for src, _, _ in pieces}:
        with av.open(str(root / name)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        h, w = frames[0].shape[:2]
        ch = min(h, w * JOIN_SIZE[1] // JOIN_SIZE[0])
        top = (h - ch) // 2
        decoded[name] = [cv2.resize(f[top : top + ch], JOIN_SIZE, interpolation=cv2.INTER_AREA)
                         for f in frames]  # fmt: skip
    made = {"Megamind.avi": (root / "Megamind.avi", [1, 98, 154, 200])}
    for name, pieces in JOINS.items():
        frames, cuts = [], []
        for src, first, last in pieces:
            if frames:
                cuts.append(len(frames))
            frames += decoded[src][first : last + 1]
        path = tmp / f"{name}.mp4"
        encode_video(frames, path, fps=24.0, options={"crf": "18", "preset": "medium"})
        made[name] = (path, cuts)
    return made


def read(frames: list[np.ndarray], options: dict[str, str]) -> tuple[list[Frame], str]:
    buf = io.BytesIO()
    encode_video(frames, buf, fps=15, options=options)
    buf.seek(0)
    reader = VideoReader(buf)
    return list(reader.frames(images=False)), reader.motion_source


def placement(schedule, frames: list[Frame]) -> list[tuple[int, str]]:
    """(index, reasons joined by '+') of each keyframe."""
    return [(f.index, "+".join(m.reasons)) for f, m in schedule.mark(frames) if m.keyframe]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/camvid")
    ap.add_argument("--intervals", type=int, nargs="+", default=[5, 10])
    args = ap.parse_args()
    t0 = time.perf_counter()
    for name, (rgb, cuts) in clips(args.root).items():
        for enc, options in (("one-ref", X264_ONE_REF), ("x264-default", {})):
            frames, source = read(rgb, options)
            sig = [signal(f) for f in frames]
            low = [f.index for f, s in zip(frames, sig, strict=True) if f.index and s.valid < 0.8]
            iframes = [f.index for f in frames[1:] if f.pict_type == "I"]
            disp = np.median([s.displacement for s in sig[1:]])
            print(
                f"\n## {name} ({len(frames)} frames, {enc}, motion {source}): cuts {cuts}, "
                f"valid share < 0.8 at {low}, stream I-frames {iframes}, "
                f"median mean |mv| {disp:.1f} px"
            )
            for k in args.intervals:
                budget = math.ceil(len(frames) / k) + 1
                for label, sch in (
                    ("fixed", FixedSchedule(k)),
                    ("adaptive", AdaptiveSchedule(k)),
                    ("adaptive spend=False", AdaptiveSchedule(k, spend=False)),
                ):
                    placed = placement(sch, frames)
                    at = {i for i, _ in placed}
                    closing = frames[-1].index not in at  # inter-BMV's "end" keyframe
                    marks = " ".join(
                        f"{i}{''.join(ABBREV.get(r, r) for r in rs.split('+'))}" for i, rs in placed
                    )
                    hit = "".join("+" if c in at else "-" for c in cuts)
                    print(
                        f"k={k:<3} {label:<21} {len(placed) + closing:>3}/{budget:<3} "
                        f"cuts {hit or '.':<3} {marks}"
                    )
    print("\n(s start, i interval, a anchor, m max-interval, C cut, I iframe, c change, p spare;")
    print(f" count includes inter-BMV's closing keyframe; {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
