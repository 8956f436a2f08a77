"""Wall time of a distributed job against one process: one long video, and a folder of videos.

Why: ``bmvseg segment`` on Ray (``bmvseg.distributed``) must pay for itself.  Its costs beside the
segmentation are the job's serial part (starting Ray and the workers, probing the inputs,
joining overlays) and a per-chunk overhead (opening the video and reaching the chunk's start,
the result's trip through Ray, the driver's writes).  This script measures, for the same videos:

- ``single``: ``bmvseg segment`` once per video, one process after another, ``--threads`` torch
  threads (default 1; pass 2 to give one process the whole 2-core machine);
- ``workers``: ``run_job(..., workers=N, threads_per_worker=1)`` on a Ray started here;
- ``cluster``: the same job on a two-node local cluster (``ray.cluster_utils.Cluster``: a head and
  a second node on this machine, 1 CPU each, exactly what ``ray start --head`` plus ``ray start
  --address`` make, but stopped by its own handles instead of ``ray stop``, which would end every
  Ray process on the machine), reached through ``ray_address``.

From the job's summaries it reports per-chunk figures: ``seek`` (open + reaching the chunk's
start; the reader decodes from frame 0 unless it can seek), each worker's model load, and the
overhead that is neither (job wall minus the busiest worker's chunk time).  Random ``enet_lite``
weights (speed does not depend on them).  Usage::

    python bench/scale.py --seconds 300 --videos 4 --video-seconds 30 --workdir /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from bmvseg.schemes.config import EngineConfig

sys.path.insert(0, str(Path(__file__).parent))
from memory import generate  # noqa: E402  (bench/ is not a package)

DRIVER = """
import json, logging, sys, time
t0 = time.perf_counter()
import ray
from bmvseg.distributed.job import run_job
from bmvseg.run.options import RunOptions
a = json.loads(sys.argv[1])
t1 = time.perf_counter()
kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
if a["address"]:
    ray.init(address=a["address"], **kw)
else:
    ray.init(num_cpus=a["workers"], **kw)
t2 = time.perf_counter()
opts = RunOptions(weights="none", scheme=a["scheme"], interval=a["k"])
rc = run_job(a["inputs"], a["out"], options=opts, workers=a["workers"], threads_per_worker=1,
             chunk_frames=a["chunk"], overlay=a["overlay"], progress=False).exit_status
t3 = time.perf_counter()
print(json.dumps({"rc": rc, "import_s": t1 - t0, "ray_init_s": t2 - t1, "job_s": t3 - t2}))
"""


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run_single(videos: list[Path], out: Path, a: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads)}
    load0 = loadavg()
    t0 = time.perf_counter()
    for v in videos:
        cmd = [sys.executable, "-m", "bmvseg.cli.main", "segment", str(v), "-o", str(out / v.stem),
               "--weights", "none", "--scheme", a.scheme, "-k", str(a.k)]  # fmt: skip
        if not a.overlay:
            cmd.append("--no-overlay")
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return {"wall_s": time.perf_counter() - t0, "load_before": load0, "load_after": loadavg()}


def run_driver(videos: list[Path], out: Path, a: argparse.Namespace, address: str | None) -> dict:
    args = {"inputs": [str(v) for v in videos], "out": str(out), "workers": a.workers,
            "scheme": a.scheme, "k": a.k, "chunk": a.chunk_frames, "overlay": a.overlay,
            "address": address}  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    load0 = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(args)], env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    wall = time.perf_counter() - t0
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(wall_s=wall, load_before=load0, load_after=loadavg())
    res.update(chunk_figures(out, videos))
    return res


def chunk_figures(out: Path, videos: list[Path]) -> dict:
    dirs = [out] if len(videos) == 1 else [out / v.stem for v in videos]
    chunks = [c for d in dirs for c in json.loads((d / "summary.json").read_text())["chunking"]
              ["chunks"]]  # fmt: skip
    busy: dict[int, float] = defaultdict(float)
    loads = {}
    for c in chunks:
        busy[c["worker"]["pid"]] += c["wall_s"]
        loads[c["worker"]["pid"]] = c["worker"]["load_s"]
    seeks = [c["seek_s"] for c in chunks if c["seek_s"] is not None]
    return {
        "chunks": len(chunks),
        "frames": sum(c["frames"] for c in chunks),
        "chunk_wall_mean_s": sum(c["wall_s"] for c in chunks) / len(chunks),
        "seek_mean_s": sum(seeks) / len(seeks),
        "seek_max_s": max(seeks),
        "model_load_mean_s": sum(loads.values()) / len(loads),
        "workers_seen": len(busy),
        "busiest_worker_s": max(busy.values()),
        "hosts": sorted({c["worker"]["host"] for c in chunks}),
    }


def two_node_cluster():
    from ray.cluster_utils import Cluster

    head = {"num_cpus": 1, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    return cluster


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=300, help="length of the long video")
    p.add_argument("--videos", type=int, default=4, help="videos in the folder")
    p.add_argument("--video-seconds", type=float, default=30, help="length of each folder video")
    p.add_argument("--size", default="480x360")
    p.add_argument("--fps", type=float, default=15)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the single process")
    p.add_argument("--chunk-frames", type=int, default=300)
    p.add_argument("--scheme", default=EngineConfig().scheme)
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--overlay", action="store_true", help="also write overlays")
    p.add_argument("--modes", default="single,workers,cluster")
    p.add_argument("--sets", default="long,folder", help="which inputs: long, folder or both")
    p.add_argument("--workdir", type=Path, default=Path("scale-bench"))
    p.add_argument("--json", type=Path, help="write the figures here too")
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    a.workdir.mkdir(parents=True, exist_ok=True)
    long = a.workdir / f"long_{a.seconds:g}s_{a.size}.mp4"
    if not long.exists():
        generate(long, a.seconds, h, w, a.fps)
    folder = a.workdir / f"folder_{a.videos}x{a.video_seconds:g}s_{a.size}"
    folder.mkdir(exist_ok=True)
    for i in range(a.videos):
        v = folder / f"v{i}.mp4"
        if not v.exists():
            generate(v, a.video_seconds, h, w, a.fps)
    sets = {"long": [long], "folder": sorted(folder.glob("*.mp4"))}
    sets = {name: sets[name] for name in a.sets.split(",")}
    modes = a.modes.split(",")
    results: dict = {"machine": platform.platform(), "cpus": os.cpu_count(), "args": vars(a)}
    for name, videos in sets.items():
        for mode in modes:
            out = a.workdir / "out" / f"{name}-{mode}"
            shutil.rmtree(out, ignore_errors=True)
            if mode == "single":
                res = run_single(videos, out, a)
            elif mode == "workers":
                res = run_driver(videos, out, a, None)
            else:
                cluster = two_node_cluster()
                try:
                    res = run_driver(videos, out, a, cluster.address)
                finally:
                    cluster.shutdown()
            results[f"{name}/{mode}"] = res
            print(f"{name:6s} {mode:8s} wall {res['wall_s']:7.1f} s  load "
                  f"{res['load_before']} -> {res['load_after']}  "
                  + ("" if mode == "single" else
                     f"ray_init {res['ray_init_s']:.1f} s job {res['job_s']:.1f} s chunks "
                     f"{res['chunks']} seek mean/max {res['seek_mean_s']:.2f}/"
                     f"{res['seek_max_s']:.2f} s load {res['model_load_mean_s']:.2f} s busiest "
                     f"{res['busiest_worker_s']:.1f} s"), flush=True)  # fmt: skip
    for name in sets:
        base = results.get(f"{name}/single")
        for mode in modes:
            if base and mode != "single":
                r = results[f"{name}/{mode}"]
                print(f"{name}: single / {mode} = {base['wall_s'] / r['wall_s']:.2f}x")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
