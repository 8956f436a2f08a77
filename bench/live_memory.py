"""Memory of a live run over a long paced stream: does ``bmvseg segment tcp://...`` stay flat?

A sender in this process encodes a moving-texture clip (cycled) as MPEG-TS with libx264
(one reference, ``tune=zerolatency``) frame by frame, paced by the wall clock at ``--fps``, into
a TCP connection on 127.0.0.1 for ``--seconds``; ``bmvseg segment`` reads it in a fresh
subprocess (the CLI as a user runs it), whose resident memory (``VmRSS``) is sampled every
``--every`` seconds.  The run ends when the sender hangs up.  Printed as Markdown: RSS at 20%,
50% and the end of the stream, the peak, and the run's own record (frames, delays, backlog).

Usage: ``python bench/live_memory.py [--seconds 300] [--fps 15] [--size 360x480]
[--scheme inter-bmv] [-k 5] [--keep-up]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av

from bmvseg.data.textures import moving_texture_clip
from bmvseg.video.encode import X264_ONE_REF, x264_params


def serve(server: socket.socket, clip: list, fps: float, seconds: float) -> None:
    """Send ``clip`` cycled, one frame every ``1 / fps`` s of wall clock, for ``seconds``."""
    conn, _ = server.accept()
    h, w = clip[0].shape[:2]
    try:
        flush = {"flush_packets": "1"}
        with conn, conn.makefile("wb", buffering=0) as sink, \
                av.open(sink, "w", format="mpegts", options=flush) as out:  # fmt: skip
            stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = x264_params({**X264_ONE_REF, "threads": "1", "tune": "zerolatency"})
            t0 = time.monotonic()
            for i, rgb in enumerate(itertools.cycle(clip)):
                if i >= seconds * fps:
                    break
                time.sleep(max(0.0, t0 + i / fps - time.monotonic()))
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    except OSError:  # the run hung up first
        pass


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--fps", type=float, default=15)
    ap.add_argument("--size", default="360x480", help="HxW")
    ap.add_argument("--scheme", default="inter-bmv")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--keep-up", action="store_true")
    ap.add_argument("--every", type=float, default=2.0)
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    clip = moving_texture_clip("object", h, w, 60, seed=1, speed=2.0)[0]
    server = socket.create_server(("127.0.0.1", 0))
    url = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    sender = threading.Thread(target=serve, args=(server, clip, args.fps, args.seconds),
                              daemon=True)  # fmt: skip
    sender.start()
    out = Path(tempfile.mkdtemp(prefix="live-memory-")) / "out"
    cmd = [sys.executable, "-m", "bmvseg.cli.main", "segment", url, "-o", str(out),
           "--weights", "none", "--scheme", args.scheme, "-k", str(args.k), "--timeout", "30",
           *(["--keep-up"] if args.keep_up else [])]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    samples: list[tuple[float, float]] = []
    while proc.poll() is None:
        rss = rss_mib(proc.pid)
        if rss is not None:
            samples.append((time.monotonic() - t0, rss))
        time.sleep(args.every)
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"bmvseg segment failed ({proc.returncode}): {stderr.strip()}")
    rec = json.loads((out / "summary.json").read_text())
    start, span = samples[0][0], samples[-1][0] - samples[0][0]

    def at(frac: float) -> float:
        return min(samples, key=lambda s: abs(s[0] - (start + frac * span)))[1]

    print(f"Command: `{' '.join(['python', *sys.argv])}`\n")
    print(f"Machine: {platform.platform()}, {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f} at the end.  Stream: {w}x{h}, {args.fps:g} fps, "
          f"{args.seconds:g} s paced over TCP; `{' '.join(cmd[3:5])} ... --scheme "
          f"{args.scheme} -k {args.k}{' --keep-up' if args.keep_up else ''}`, "
          f"OMP_NUM_THREADS=1.\n")  # fmt: skip
    lat = rec["latency_ms"]
    print("| frames | dropped | RSS@20% MiB | RSS@50% MiB | RSS@end MiB | peak RSS MiB "
          "| delay p50 / p95 / max ms | backlog max |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {rec['frames']} | {rec['frames_dropped']} | {at(0.2):.0f} | {at(0.5):.0f} | "
          f"{at(1.0):.0f} | {max(r for _, r in samples):.0f} | {lat['p50_ms']} / "
          f"{lat['p95_ms']} / {lat['max_ms']} | {rec['backlog']['max']} |")
    print(f"\nRSS at the end / at 20%: **{at(1.0) / at(0.2):.3f}**; state {rec['state']!r}.")


if __name__ == "__main__":
    main()
