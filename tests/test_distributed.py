"""The distributed job gives byte-identical labels to one process, survives a killed worker and a
killed driver, and reports a bad video among good ones without stopping them."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

import av
import pytest

from bmvseg.data.textures import moving_texture_clip
from bmvseg.distributed.chunks import plan_chunks
from bmvseg.distributed.cluster import WORKER_PREFIX
from bmvseg.distributed.job import run_job
from bmvseg.distributed.worker import ChunkSegmenter
from bmvseg.output.frames import label_png as png
from bmvseg.output.overlay import join_pieces
from bmvseg.run.iterate import segment
from bmvseg.run.options import RunOptions
from bmvseg.schemes.engine import SCHEMES
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.reader import VideoReader

H, W = 64, 96
K = 5
NO_RAY = 'the ray extra is not installed (pip install -e ".[ray]")'




def _clip(path: Path, frames: int, seed: int = 5, options: dict | None = None) -> Path:
    images = moving_texture_clip("object", H, W, frames, seed=seed, speed=1.5)[0]
    encode_video(images, path, options=X264_ONE_REF if options is None else options)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("clips")
    return {
        "c20": _clip(tmp / "c20.mp4", 20, seed=1),  # chunk sizes 5 and 10 divide it
        "c23": _clip(tmp / "c23.mp4", 23, seed=2),  # ... and not this one
        "long": _clip(tmp / "long.mp4", 60, seed=3),
        # x264's defaults (3 references, B-frames): the motion must come from the re-encoder.
        "bframes": _clip(tmp / "bframes.mp4", 23, seed=4, options={"crf": "18"}),
    }


def _spec(weights: Path, scheme: str = "inter-bmv", **kw) -> RunOptions:
    return RunOptions(weights=str(weights), scheme=scheme, **{"interval": K, **kw})


def _whole_run(path: Path, options: RunOptions) -> list[bytes]:
    """Label PNGs of one single-process run over the whole video (``bmvseg.segment``)."""
    kw = {k: v for k, v in options.identity().items() if k != "model"}
    return [png(r.labels) for r in segment(path, model=options.model, **kw)]


def _labels(out: Path) -> list[bytes]:
    files = sorted((out / "labels").iterdir())
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(len(files))]
    return [f.read_bytes() for f in files]


def _overlay_frames(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [f.pts for f in c.decode(c.streams.video[0])]


def _in_chunks(seg: ChunkSegmenter, path: Path, size: int, tmp: Path) -> list[bytes]:
    with VideoReader(path) as r:
        count = r.frame_count
    chunks = plan_chunks(count, size, seg.options.engine_config().schedule().stable)
    assert len(chunks) > 1
    results = [seg.run_chunk(str(path), c) for c in chunks]
    pieces = []
    for i, res in enumerate(results):
        pieces.append(tmp / f"piece{i}.mp4")
        pieces[-1].write_bytes(res.overlay)
    join_pieces(pieces, tmp / "overlay.mp4")
    pts = _overlay_frames(tmp / "overlay.mp4")
    assert len(pts) == count and all(b > a for a, b in pairwise(pts))
    return [p for res in results for p in res.labels]


# -- in one process: chunks join into the whole run -------------------------------------------


@pytest.mark.parametrize("scheme", SCHEMES)
def test_chunks_join_into_the_whole_run(weights, clips, scheme, tmp_path):
    opts = _spec(weights, scheme)
    seg = ChunkSegmenter(opts)
    for name, size in (("c20", 10), ("c23", 5)):
        ref = _whole_run(clips[name], opts)
        assert _in_chunks(seg, clips[name], size, tmp_path) == ref, (name, size)


def test_chunks_join_into_the_whole_run_with_reencoded_motion(weights, clips, tmp_path):
    opts = _spec(weights, "prop-bmv")
    with VideoReader(clips["bframes"]) as r:
        assert r.motion_source == "reencode"
    ref = _whole_run(clips["bframes"], opts)
    assert _in_chunks(ChunkSegmenter(opts), clips["bframes"], 10, tmp_path) == ref


@pytest.mark.parametrize("scheme", ["prop-bmv", "inter-bmv"])
def test_adaptive_placement_chunks_start_at_anchors_and_join(weights, clips, scheme, tmp_path):
    opts = _spec(weights, scheme, interval=2, keyframes="adaptive")  # anchors every 20 frames
    ref = _whole_run(clips["long"], opts)
    assert _in_chunks(ChunkSegmenter(opts), clips["long"], 20, tmp_path) == ref


def test_a_bad_checkpoint_is_kept_for_info(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    seg = ChunkSegmenter(RunOptions(weights=str(bad)))
    with pytest.raises(Exception, match="bad.pt"):
        seg.info()


# -- on a real local Ray cluster ----------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip(
        "ray", reason='the ray extra is not installed (pip install -e ".[ray]")'
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


def test_one_and_two_workers_give_the_single_process_labels_and_report_a_corrupt_video(
    ray_session, weights, clips, tmp_path, capsys
):
    opts = _spec(weights)
    refs = {name: _whole_run(clips[name], opts) for name in ("c20", "c23", "bframes")}
    # Two jobs: the given files, one worker, chunks of 10; a folder holding a clash of names
    # (sub/c23.mp4 is the c20 clip) and a corrupt file, two workers, chunks of 5.
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "c23.mp4").write_bytes(clips["c23"].read_bytes())
    (folder / "sub" / "c23.mp4").write_bytes(clips["c20"].read_bytes())
    (folder / "broken.mp4").write_bytes(os.urandom(4000))
    (folder / "bframes.mp4").write_bytes(clips["bframes"].read_bytes())  # re-encoded motion
    out1, out2 = tmp_path / "w1", tmp_path / "w2"
    first = run_job([clips["c20"], clips["c23"]], out1, options=opts, workers=1, chunk_frames=10)
    assert first.exit_status == 0
    second = run_job([folder], out2, options=opts, workers=2, chunk_frames=5)
    assert second.exit_status == 2
    (err,) = second.errors()
    assert "broken.mp4" in err and "\n" not in err
    assert "1 failed" in second.closing_line()
    job = json.loads((out2 / "job.json").read_text())
    states = {v["name"]: (v["state"], v["error"], v["renamed_from"]) for v in job["videos"]}
    assert states["c23"] == ("complete", None, None)
    assert states["c23-2"] == ("complete", None, "c23")
    state, error, _ = states["broken"]
    assert state == "failed" and "broken.mp4" in error and "\n" not in error
    assert not job["complete"] and not (out2 / "broken" / "summary.json").exists()
    assert json.loads((out1 / "job.json").read_text())["complete"]
    for out, stem, ref_name, size in (
        (out1, "c20", "c20", 10),  # 10 divides 20
        (out1, "c23", "c23", 10),  # ... not 23
        (out2, "c23", "c23", 5),
        (out2, "c23-2", "c20", 5),
        (out2, "bframes", "bframes", 5),
    ):
        ref = refs[ref_name]
        assert _labels(out / stem) == ref, (out.name, stem)
        summary = json.loads((out / stem / "summary.json").read_text())
        chunks = summary["chunking"]["chunks"]
        assert summary["complete"] and summary["chunking"]["chunk_frames"] == size
        assert summary["job"]["workers"] == (1 if out == out1 else 2)
        assert sum(c["frames"] for c in chunks) == len(ref) and len(chunks) > 1
        pts = _overlay_frames(out / stem / "overlay.mp4")
        assert len(pts) == len(ref) and all(b > a for a, b in pairwise(pts))
        assert not (out / stem / ".chunks").exists()
    assert len({c["worker"]["pid"] for s in ("c20", "c23") for c in _chunk_stats(out1 / s)}) == 1
    assert len({c["worker"]["pid"] for s in ("c23", "c23-2") for c in _chunk_stats(out2 / s)}) == 2


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


@pytest.mark.parametrize("name", ["tree.avi", "Megamind.avi"])
def test_workers_give_the_single_process_labels_on_real_footage(ray_session, weights, name,
                                                                 tmp_path):  # fmt: skip
    """Byte-identical labels whatever the workers (one torch thread each) and the single
    process's threads, on real clips (Cinepak, re-encoded motion; MPEG-4 part 2 with cuts)."""
    import torch

    clip = REAL / name
    if not clip.is_file():
        pytest.skip(f"real footage {name} is not present in {REAL}")
    opts = _spec(weights)
    if name == "Megamind.avi":  # its first 110 frames (a cut at 98) keep the test short
        cut = tmp_path / "head.avi"
        with av.open(str(clip)) as src, av.open(str(cut), "w") as dst:
            s_in = src.streams.video[0]
            s_out = dst.add_stream_from_template(s_in)
            for i, packet in enumerate(src.demux(s_in)):
                if i >= 110 or packet.dts is None:
                    break
                packet.stream = s_out
                dst.mux(packet)
        clip = cut
    threads = torch.get_num_threads()
    refs = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            refs.append(_whole_run(clip, opts))
    finally:
        torch.set_num_threads(threads)
    assert refs[0] == refs[1], "the single process's labels depend on its thread count"
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        result = run_job([clip], out, options=opts, workers=workers, chunk_frames=20,
                         overlay=False)  # fmt: skip
        assert result.exit_status == 0, result.errors()
        assert _labels(out) == refs[0], f"{workers} worker(s)"


def _chunk_stats(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["chunking"]["chunks"]


def _wait_for_marker(out: Path, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not list((out / ".chunks").glob("*.json")):
        assert time.monotonic() - t0 < timeout, "no chunk finished"
        time.sleep(0.01)


def test_a_killed_worker_is_restarted_and_the_output_is_identical(
    ray_session, weights, clips, tmp_path
):
    opts = _spec(weights)
    ref = _whole_run(clips["long"], opts)
    out = tmp_path / "out"
    result: dict = {}
    job = threading.Thread(
        target=lambda: result.setdefault(
            "rc",
            run_job([clips["long"]], out, options=opts, workers=1, chunk_frames=10).exit_status,
        )
    )
    job.start()
    try:
        _wait_for_marker(out)
        # The worker's pid from Ray's actor table (ray.util.state needs the dashboard extra).
        actors = ray_session._private.state.actors().values()
        (worker,) = [a for a in actors if (a["Name"] or "").startswith(WORKER_PREFIX)
                     and a["State"] == "ALIVE"]  # fmt: skip
        assert not (out / "summary.json").exists()
        os.kill(worker["Pid"], signal.SIGKILL)
    finally:
        job.join(timeout=300)
    assert result["rc"] == 0
    assert _labels(out) == ref
    pids = [c["worker"]["pid"] for c in _chunk_stats(out)]
    assert pids[0] == worker["Pid"] and pids[-1] != worker["Pid"]  # a new process finished it
    assert len(_overlay_frames(out / "overlay.mp4")) == len(ref)


def test_a_lost_node_is_survived_and_the_output_is_identical(weights, clips, tmp_path):
    """A second node stopped mid-job: its worker cannot come back; the other one finishes."""
    pytest.importorskip("ray", reason=NO_RAY)
    from ray.cluster_utils import Cluster

    opts = _spec(weights)
    ref = _whole_run(clips["long"], opts)
    out = tmp_path / "out"
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        second = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        driver = _driver(clips["long"], out, weights, cluster.address, workers=2)
        try:
            _wait_for_marker(out)
            assert not (out / "summary.json").exists()
            cluster.remove_node(second)  # its worker's chunks are lost, it cannot restart
            _, err = driver.communicate(timeout=300)
        finally:
            driver.kill()
    finally:
        cluster.shutdown()
    assert driver.returncode == 0, err
    assert _labels(out) == ref
    assert json.loads((out / "summary.json").read_text())["job"]["workers"] == 2


def _driver(video: Path, out: Path, weights: Path, address: str, workers: int) -> subprocess.Popen:
    """``run_job`` in its own process (a driver that can be killed), on the cluster at address."""
    code = (
        "from bmvseg.distributed.job import run_job; from bmvseg.run.options import "
        f"RunOptions; run_job([{str(video)!r}], {str(out)!r}, options=RunOptions("
        f"weights={str(weights)!r}, interval={K}), ray_address={address!r}, workers={workers}, "
        "chunk_frames=10)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True
    )


def test_a_killed_driver_resumes_to_the_same_output(ray_session, weights, clips, tmp_path):
    opts = _spec(weights)
    ref = _whole_run(clips["long"], opts)
    out = tmp_path / "out"
    address = ray_session.get_runtime_context().gcs_address
    driver = _driver(clips["long"], out, weights, address, workers=1)
    try:
        _wait_for_marker(out)
    finally:
        driver.kill()
        driver.communicate(timeout=60)
    assert not (out / "summary.json").exists()
    done = len(list((out / ".chunks").glob("*.json")))
    resumed = run_job([clips["long"]], out, options=opts, workers=1, chunk_frames=10, resume=True)
    assert resumed.exit_status == 0
    assert _labels(out) == ref
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chunking"]["resumed_chunks"] >= done >= 1
    assert len(_overlay_frames(out / "overlay.mp4")) == len(ref)


def test_an_unreachable_cluster_is_one_line(weights, clips, tmp_path):
    pytest.importorskip("ray", reason=NO_RAY)
    from bmvseg.errors import BmvsegError

    with pytest.raises(BmvsegError, match="cannot connect to the Ray cluster at 127.0.0.1:9"):
        run_job([clips["c20"]], tmp_path / "o", options=_spec(weights), ray_address="127.0.0.1:9")
    assert not (tmp_path / "o").exists()


def test_without_ray_several_inputs_run_in_process_and_a_corrupt_one_is_reported(
    weights, clips, tmp_path
):
    """No workers, no cluster: Ray is never imported, the layout and job record are the same."""
    bad = tmp_path / "broken.mkv"
    bad.write_bytes(os.urandom(3000))
    out = tmp_path / "out"
    argv = ["segment", str(clips["c23"]), str(bad), "-o", str(out), "--weights", str(weights),
            "-k", str(K), "--chunk-frames", "10"]  # fmt: skip
    code = (
        f"import sys; from bmvseg.cli.main import main; rc = main({argv!r}); "
        "assert 'ray' not in sys.modules; sys.exit(rc)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.mkv" in lines[0], proc.stderr
    job = json.loads((out / "job.json").read_text())
    assert [v["state"] for v in job["videos"]] == ["complete", "failed"]
    assert _labels(out / "c23") == _whole_run(clips["c23"], _spec(weights))


def test_cli_folder_is_a_job_claimed_like_every_output(tmp_path, weights) -> None:
    """``bmvseg segment FOLDER`` runs a job in this process (no Ray): one folder per video,
    job.json, run records; a second run into it without a flag is refused, untouched."""
    from bmvseg.cli.main import main

    folder = tmp_path / "in"
    folder.mkdir()
    for name, seed in (("a", 1), ("b", 2)):
        _clip(folder / f"{name}.mp4", 12, seed=seed)
    out = tmp_path / "out"
    argv = ["segment", str(folder), "-o", str(out), "--weights", str(weights), "--no-overlay",
            "-k", "4", "--chunk-frames", "8"]  # fmt: skip
    assert main(argv) == 0
    job = json.loads((out / "job.json").read_text())
    assert job["complete"] and [v["state"] for v in job["videos"]] == ["complete"] * 2
    for name in ("a", "b"):
        assert len(list((out / name / "labels").glob("*.png"))) == 12
        assert json.loads((out / name / ".bmvseg-run.json").read_text())["kind"] == "chunked"
        assert not (out / name / ".chunks").exists()  # chunk state removed once complete
    (out / "notes.txt").write_text("mine")
    assert main(argv) != 0  # already holds output: refused, nothing removed
    assert (out / "notes.txt").read_text() == "mine" and (out / "a" / "summary.json").is_file()
    assert main([*argv, "--overwrite"]) == 0 and (out / "notes.txt").read_text() == "mine"


def test_plain_segment_never_imports_ray(tmp_path, weights) -> None:
    video = _clip(tmp_path / "v.mp4", 6)
    code = ("import sys; from bmvseg.cli.main import main; "
            f"rc = main(['segment', {str(video)!r}, '-o', {str(tmp_path / 'o')!r}, '--weights', "
            f"{str(weights)!r}, '--no-overlay']); "
            "sys.exit(rc or ('ray' in sys.modules and 3))")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
