"""Fixed against adaptive keyframe placement on footage with cuts and from a static camera.

    python bench/placement.py --root path/to/camvid -o results/placement
    python bench/placement.py --real ../shared/data/real -o results/placement

With ``--real``: real footage with hard cuts (``Megamind.avi`` as shipped and two joins of it
with ``bigbuckbunny.mp4``, :func:`bench.keyframes.real_clips`), inter-BMV with the shipped
``enet_lite`` scored by agreement with the per-frame model on every frame
(:func:`~bmvseg.evaluation.placement.agreement_with_per_frame`): ``OUT/real/agreement.md`` and
``agreement.csv``.

The clips are :mod:`bench.keyframes`' (CamVid's 15 Hz run joined out of order: hard cuts at
frames 43 and 74; one frame of it held for 60 frames with sensor noise: a parked camera),
encoded with x264's defaults (an I-frame at each cut, B-frames: motion from the re-encoder),
in a temporary directory only.  Each is scored by ``bmvseg benchmark VIDEO --reference
per-frame --keyframes adaptive`` (fidelity to the per-frame model), which writes
``placement.md`` and ``placement.csv`` into ``OUT/<clip>/``; the tables are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/keyframes.py, beside this

from keyframes import clips, real_clips  # noqa: E402

from bmvseg.evaluation.benchmark import BenchmarkSpec, run_benchmark  # noqa: E402
from bmvseg.evaluation.placement import (  # noqa: E402
    AGREEMENT_COLUMNS,
    NO_CUT_TEST,
    agreement_md,
    agreement_with_per_frame,
)
from bmvseg.evaluation.report import csv_text  # noqa: E402
from bmvseg.models.registry import build_model  # noqa: E402
from bmvseg.run.options import RunOptions  # noqa: E402
from bmvseg.schemes.keyframes import PLACEMENTS  # noqa: E402
from bmvseg.video.encode import encode_video  # noqa: E402
from bmvseg.video.reader import VideoReader  # noqa: E402


def real(root: str, output: Path, intervals: list[int], placements: list[str],
         command: str) -> None:  # fmt: skip
    """The ``--real`` measurement (see the module docstring)."""
    import platform
    import time

    import torch

    torch.set_num_threads(1)  # a shared machine: one thread cannot stall waiting on another
    model = build_model("enet_lite").eval()
    rows: list[dict] = []
    t0 = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)

    def write(row: dict | None = None) -> None:  # after every row: a long run keeps its part
        if row is not None:
            rows.append(row)
            print(f"{time.perf_counter() - t0:.0f} s: {row}", flush=True)
        note = (f"Model `enet_lite` (shipped weights), inter-BMV (avg); agreement with the "
                f"per-frame model on every frame (fidelity, not accuracy); {platform.machine()}, "
                f"one torch thread, {time.perf_counter() - t0:.0f} s.  Command: `{command}`")
        (output / "agreement.csv").write_text(csv_text(rows, AGREEMENT_COLUMNS))
        (output / "agreement.md").write_text(agreement_md(rows, note))  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        for name, (video, cuts) in real_clips(root, Path(tmp)).items():
            with VideoReader(video) as reader:
                frames = list(reader.frames())
                source = reader.motion_source
            h, w = frames[0].image.shape[:2]
            clip = f"{name} ({len(frames)} frames, {w}x{h}, motion {source}, cuts {cuts})"
            agreement_with_per_frame(model, frames, intervals, clip_name=clip,
                                     placements=placements, done=write)  # fmt: skip
            del frames
    write()
    print((output / "agreement.md").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CAMVID_ROOT"), required=False)
    ap.add_argument("-o", "--output", default="results/placement")
    ap.add_argument("--intervals", default="5,10")
    ap.add_argument("--clips", default="cuts,static")
    ap.add_argument("--real", metavar="DIR", help="real footage with cuts (../shared/data/real)")
    ap.add_argument("--placements", default=f"{NO_CUT_TEST},{','.join(PLACEMENTS)}",
                    help="--real: which placements, comma-separated")  # fmt: skip
    args = ap.parse_args()
    if args.real:
        command = (f"python bench/placement.py --real {args.real} --intervals {args.intervals} "
                   f"--placements '{args.placements}' -o {args.output}")  # fmt: skip
        real(args.real, Path(args.output) / "real", [int(x) for x in args.intervals.split(",")],
             args.placements.split(","), command)  # fmt: skip
        return
    if not args.root:
        ap.error("give --root path/to/camvid or --real path/to/real")
    made = clips(args.root)
    intervals = [int(x) for x in args.intervals.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.clips.split(","):
            frames, cuts = made[name]
            video = Path(tmp) / f"{name}.mp4"
            encode_video(frames, video, fps=15.0, options={"crf": "18", "preset": "medium"})
            spec = BenchmarkSpec(
                output=Path(args.output) / name, video=str(video), reference="per-frame",
                options=RunOptions(model="enet_lite", keyframes="adaptive"),
                schemes=["prop-bmv", "inter-bmv"], fusions=["avg"], intervals=intervals,
                throughput=False, overwrite=True,
                command=f"python bench/placement.py --root path/to/camvid --clips {name} "
                        f"--intervals {args.intervals} -o {args.output}",
            )  # fmt: skip
            run_benchmark(spec)
            print(f"## {name} (cuts at {cuts or 'none'})\n")
            print((Path(args.output) / name / "placement.md").read_text())


if __name__ == "__main__":
    main()
