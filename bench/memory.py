"""Peak memory of ``bmvseg segment`` (inter-BMV) against video length: it must not grow.

Why: unattended runs last hours; anything kept per frame (timings, frames, motion fields, label
maps) shows up as peak RSS that grows with the video.  Each video is generated *streaming* (a
panning window over one periodic texture plus a moving textured square, written frame by frame
through :class:`~bmvseg.video.encode.VideoWriter`, so generation holds no video in memory), then
segmented in a fresh subprocess, with and without the overlay.  Reported per run:

- ``peak``: the child's ``ru_maxrss`` at exit (high-water mark of resident memory);
- ``rss@20%`` / ``rss@end``: resident memory sampled from ``/proc/PID/status`` while it runs, at
  20% of the run and at its end (growth between them is per-frame accumulation);
- ``live first/last``: heap memory glibc reports *in use* (``mallinfo2``: ``uordblks + hblkhd``)
  at the same point of every frame (as the engine hands the frame's result over), as the
  maximum over the first and over the last 150 frames.  Anything kept per frame makes ``last``
  exceed ``first``; if only RSS grows, the growth is memory the allocator holds free
  (fragmentation), not data.

``--env NAME=VALUE`` sets allocator tunables in the child (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_ARENA_MAX``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``) to measure their effect.

Random ``enet_lite`` weights (memory does not depend on them); one torch thread
(``OMP_NUM_THREADS=1``) so the timing is stable on a shared machine.  Usage::

    python bench/memory.py --seconds 10,300 --size 480x360 --fps 15
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bmvseg.data.textures import smooth_texture
from bmvseg.video.encode import X264_ONE_REF, VideoWriter

CHILD = """
import ctypes, resource, sys
from bmvseg.cli.main import main

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

live = []  # bytes in use after each frame
try:
    info = ctypes.CDLL("libc.so.6").mallinfo2
    info.restype = Mallinfo2
except (OSError, AttributeError):  # not glibc >= 2.33: RSS only
    info = None

if info is not None:
    from bmvseg.schemes import engine
    engine_run = engine.Engine.run

    def run(self, *args, **kwargs):
        for result in engine_run(self, *args, **kwargs):
            m = info()
            live.append(m.uordblks + m.hblkhd)
            yield result

    engine.Engine.run = run
rc = main(sys.argv[1:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
n = min(150, len(live))
if n:
    print("LIVE_FIRST_LAST_B", max(live[:n]), max(live[-n:]), flush=True)
sys.exit(rc)
"""


def generate(path: Path, seconds: float, height: int, width: int, fps: float) -> int:
    """A camera pan over a periodic texture and an object moving across it, streamed to disk."""
    frames = round(seconds * fps)
    period = 1024
    background = smooth_texture(height, period, seed=1, scale=8.0)
    obj = smooth_texture(height // 3, width // 4, seed=2, scale=6.0)
    xs = np.arange(width)
    with VideoWriter(path, fps=fps, options={**X264_ONE_REF, "preset": "veryfast"}) as out:
        for t in range(frames):
            img = background[:, (xs + 2 * t) % period]  # pans 2 px/frame
            oy = int((height - obj.shape[0]) * (0.5 + 0.4 * np.sin(t / 40)))
            ox = (3 * t) % (width + obj.shape[1]) - obj.shape[1]
            x0, x1 = max(ox, 0), min(ox + obj.shape[1], width)
            if x1 > x0:
                img = img.copy()
                img[oy : oy + obj.shape[0], x0:x1] = obj[:, x0 - ox : x1 - ox]
            out.write(img)
    return frames


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def measure(video: Path, out: Path, overlay: bool, env: dict[str, str]) -> dict[str, float]:
    """Segment ``video`` in a fresh process; peak and sampled RSS in MiB, wall time."""
    argv = [sys.executable, "-c", CHILD, "segment", str(video), "-o", str(out)]
    argv += ["--weights", "none", "--scheme", "inter-bmv", "-k", "5"]
    if not overlay:
        argv.append("--no-overlay")
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    t0 = time.perf_counter()
    pipe = subprocess.PIPE
    proc = subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True, env=env)
    samples: list[tuple[float, int]] = []
    while proc.poll() is None:
        rss = _rss_kb(proc.pid)
        if rss is not None:
            samples.append((time.perf_counter() - t0, rss))
        time.sleep(0.5)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"segment failed ({proc.returncode}): {stderr.strip()[-500:]}")
    peak = int(stdout.split("MAXRSS_KB")[1].split()[0])
    first = last = float("nan")
    if "LIVE_FIRST_LAST_B" in stdout:
        first, last = (int(v) / 2**20 for v in stdout.split("LIVE_FIRST_LAST_B")[1].split()[:2])
    summary = json.loads((out / "summary.json").read_text())

    def at(frac: float) -> float:
        t = frac * samples[-1][0]
        return min(samples, key=lambda s: abs(s[0] - t))[1] / 1024

    return {
        "frames": summary["frames"],
        "wall_s": wall,
        "fps": summary["fps"],
        "peak_mib": peak / 1024,
        "rss20_mib": at(0.2) if samples else float("nan"),
        "rss_end_mib": at(1.0) if samples else float("nan"),
        "live_first_mib": first,
        "live_last_mib": last,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", default="10,300", help="video lengths, comma-separated")
    ap.add_argument("--size", default="480x360", help="WIDTHxHEIGHT")
    ap.add_argument("--fps", type=float, default=15.0)
    ap.add_argument("--workdir", help="where videos and outputs go (default: a temp dir)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment for the segment runs, e.g. MALLOC_ARENA_MAX=2")  # fmt: skip
    ap.add_argument("--overlay", choices=("both", "no", "yes"), default="both")
    args = ap.parse_args()
    env = dict(kv.split("=", 1) for kv in args.env)
    overlays = {"both": (False, True), "no": (False,), "yes": (True,)}[args.overlay]
    width, height = map(int, args.size.split("x"))
    lengths = [float(s) for s in args.seconds.split(",")]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bmvseg-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, {platform.processor()}")
    print(f"size {width}x{height}, {args.fps:g} fps, inter-BMV k=5, enet_lite random weights")
    print(f"environment: {' '.join(args.env) or 'default allocator settings'}")
    print(
        "| video | overlay | frames | wall s | fps | peak RSS MiB | RSS@20% MiB | RSS@end MiB "
        "| live heap, first 150 frames MiB | live heap, last 150 MiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    peaks: dict[bool, list[float]] = {False: [], True: []}
    lives: dict[bool, list[float]] = {False: [], True: []}
    for seconds in lengths:
        video = work / f"pan_{seconds:g}s_{width}x{height}.mp4"
        if not video.is_file():  # reused from an earlier run in the same --workdir
            t0 = time.perf_counter()
            n = generate(video, seconds, height, width, args.fps)
            gen_s = time.perf_counter() - t0
            print(f"<!-- generated {video.name}: {n} frames in {gen_s:.0f} s -->", flush=True)
        for overlay in overlays:
            out = work / f"out_{seconds:g}_{int(overlay)}"
            shutil.rmtree(out, ignore_errors=True)
            r = measure(video, out, overlay, env)
            peaks[overlay].append(r["peak_mib"])
            lives[overlay].append(r["live_last_mib"])
            print(
                f"| {seconds:g} s | {'yes' if overlay else 'no'} | {r['frames']} | "
                f"{r['wall_s']:.0f} | {r['fps']:.1f} | {r['peak_mib']:.0f} | "
                f"{r['rss20_mib']:.0f} | {r['rss_end_mib']:.0f} | {r['live_first_mib']:.1f} | "
                f"{r['live_last_mib']:.1f} |",
                flush=True,
            )
    for overlay, values in peaks.items():
        if len(values) > 1:
            ratio = max(values) / min(values)
            verdict = "within" if ratio <= 1.10 else "NOT within"
            live = max(lives[overlay]) / min(lives[overlay])
            print(
                f"overlay={'yes' if overlay else 'no'}: longest/shortest peak RSS = {ratio:.3f} "
                f"({verdict} the 10% target); live heap (last 150 frames) = {live:.3f}"
            )


if __name__ == "__main__":
    main()
