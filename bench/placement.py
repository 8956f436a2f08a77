"""Fixed against adaptive keyframe placement on footage with cuts and from a static camera.

    python bench/placement.py --root path/to/camvid -o results/placement

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

from keyframes import clips  # noqa: E402

from bmvseg.evaluation.benchmark import BenchmarkSpec, run_benchmark  # noqa: E402
from bmvseg.run.options import RunOptions  # noqa: E402
from bmvseg.video.encode import encode_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.environ.get("CAMVID_ROOT"), required=False)
    ap.add_argument("-o", "--output", default="results/placement")
    ap.add_argument("--intervals", default="5,10")
    ap.add_argument("--clips", default="cuts,static")
    args = ap.parse_args()
    if not args.root:
        ap.error("give --root path/to/camvid")
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
