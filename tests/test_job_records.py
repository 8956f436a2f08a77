"""A job says what happened to every video and trusts nothing it cannot check (issue 21, items
3, 9, 11, 13, 14): truncated videos are named, resume verifies every file a finished part
claims, odd video names get safe folders, a job continues with an added video, and Ctrl-C as a
Ray job ends gives a status that says what happened.  Inputs are generated here."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_awkward_inputs import _faststart_cut

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.distributed.inputs import assign_names
from bmvseg.distributed.job import run_job
from bmvseg.output.summary import brief
from bmvseg.run.options import RunOptions
from bmvseg.video.encode import X264_ONE_REF, encode_video

N = 12


def _clip(path: Path, seed: int, frames: int = N) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(moving_texture_clip("object", 48, 64, frames, seed=seed)[0], path,
                 options=X264_ONE_REF)  # fmt: skip
    return path


def _argv(inputs: list[Path], out: Path, weights: Path, *extra: str) -> list[str]:
    return ["segment", *map(str, inputs), "-o", str(out), "--weights", str(weights), "-k", "4",
            "--chunk-frames", "6", *extra]  # fmt: skip


def _labels(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "labels").glob("*.png"))}


def test_a_job_names_videos_that_ended_early_and_carries_their_summaries(
    tmp_path, weights, capsys
):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        _faststart_cut(tmp_path / name, 0.5).rename(folder / f"{name}.mp4")
    _clip(folder / "c.mp4", 3)
    out = tmp_path / "out"
    assert main(_argv([folder], out, weights)) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("1 of 3 videos complete; 2 ended early (a.mp4, b.mp4)"), last
    job = json.loads((out / "job.json").read_text())
    assert job["ended_early"] == ["a", "b"] and job["damaged"] == []
    for v in job["videos"]:
        summary = json.loads((out / v["name"] / "summary.json").read_text())
        assert v["summary"] == brief(summary)  # what the summary says, the job says
        assert v["state"] == summary["state"]
        assert v["state"] == ("complete" if v["name"] == "c" else "ended early")
        assert summary["stream_ended_early"] is (v["name"] != "c")
        assert v["summary"]["fps"] and v["summary"]["frames"] == len(_labels(out / v["name"]))
        assert {"damaged_frames", "concealed_frames", "input_fps"} <= set(v["summary"])


def test_resume_redoes_what_a_finished_part_claims_but_lacks(tmp_path, weights, capsys):
    """A deleted label, a truncated one, and a forged chunk marker are segmented again."""
    a, b = _clip(tmp_path / "a.mp4", 1), _clip(tmp_path / "b.mp4", 2)
    out = tmp_path / "out"
    assert main(_argv([a, b], out, weights)) == 0
    ref = {v: _labels(out / v) for v in ("a", "b")}
    (out / "a" / "labels" / "000007.png").unlink()
    damaged = out / "b" / "labels" / "000003.png"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    capsys.readouterr()
    assert main(_argv([a, b], out, weights, "--resume")) == 0
    assert "2 of 2 videos complete" in capsys.readouterr().out
    assert {v: _labels(out / v) for v in ("a", "b")} == ref

    # A video interrupted midway: its summary gone, a forged marker vouching for labels that
    # are not there (and one vouching for a label of the wrong size).
    (out / "a" / "summary.json").unlink()
    for p in list((out / "a" / "labels").iterdir())[3:]:
        p.unlink()
    chunks = out / "a" / ".chunks"
    chunks.mkdir()
    marker = json.loads((out / "b" / "summary.json").read_text())["chunking"]["chunks"][1]
    (chunks / f"{marker['start']:06d}-end.json").write_text(json.dumps(marker))
    first = {**json.loads((out / "b" / "summary.json").read_text())["chunking"]["chunks"][0]}
    first["label_bytes"] = [s + 1 for s in first["label_bytes"]]
    (chunks / "000000-{:06d}.json".format(first["end"])).write_text(json.dumps(first))
    assert main(_argv([a, b], out, weights, "--resume")) == 0
    assert _labels(out / "a") == ref["a"]
    summary = json.loads((out / "a" / "summary.json").read_text())
    assert summary["chunking"]["resumed_chunks"] == 0 and summary["frames"] == N


def test_odd_video_names_get_folders_that_cannot_collide_with_the_job(tmp_path, weights):
    names = ["job.json.mp4", ".bmvseg-run.json.mp4", "...mp4", "..mp4", "Job.JSON.mkv"]
    assert [v.name for v in assign_names([Path(n) for n in names])] == [
        "job.json-2", "bmvseg-run.json", "video", "video-2", "Job.JSON-3",
    ]  # fmt: skip
    src = _clip(tmp_path / "src.mp4", 1, frames=6)
    inputs = []
    for n in names[:3]:
        (tmp_path / "in" / n).parent.mkdir(exist_ok=True)
        inputs.append(tmp_path / "in" / n)
        inputs[-1].write_bytes(src.read_bytes())
    out = tmp_path / "out"
    assert main(_argv(inputs, out, weights)) == 0
    job = json.loads((out / "job.json").read_text())
    assert [v["state"] for v in job["videos"]] == ["complete"] * 3
    assert sorted(os.listdir(out)) == sorted(
        [".bmvseg-run.json", "job.json", "job.json-2", "bmvseg-run.json", "video"]
    )


def test_a_folder_job_resumes_after_a_video_is_added(tmp_path, weights, capsys):
    folder = tmp_path / "in"
    _clip(folder / "a.mp4", 1)
    out = tmp_path / "out"
    assert main(_argv([folder], out, weights)) == 0  # one video, still the job's layout
    assert (out / "job.json").is_file() and (out / "a" / "summary.json").is_file()
    before = _labels(out / "a")
    _clip(folder / "b.mp4", 2)
    capsys.readouterr()
    assert main(_argv([folder], out, weights, "--resume")) == 0
    assert "2 of 2 videos complete" in capsys.readouterr().out
    assert _labels(out / "a") == before and len(_labels(out / "b")) == N

    # One of the job's videos given alone, with --resume: it continues in the job's layout.
    (out / "b" / "summary.json").unlink()
    assert main(_argv([folder / "b.mp4"], out, weights, "--resume")) == 0
    assert len(_labels(out / "b")) == N and not (out / "labels").exists()
    job = json.loads((out / "job.json").read_text())
    assert [v["name"] for v in job["videos"]] == ["a", "b"] and job["complete"]

    # A plain run into a video's folder of the job says so in the user's words.
    assert main(_argv([folder / "a.mp4"], out / "a", weights)) == 2
    err = capsys.readouterr().err
    assert "one video of a 'bmvseg segment' job" in err and "chunked" not in err, err


def test_a_single_video_job_resumes_without_its_workers_flag(tmp_path, weights, capsys):
    """A one-video job's folder (what ``--workers`` makes) resumes as a job without it."""
    a = _clip(tmp_path / "a.mp4", 1)
    out = tmp_path / "out"
    options = RunOptions(weights=str(weights), interval=4)
    assert run_job([a], out, options=options, chunk_frames=6).exit_status == 0
    labels = _labels(out)
    (out / "summary.json").unlink()
    (out / "labels" / "000010.png").unlink()
    assert main(_argv([a], out, weights, "--resume")) == 0, capsys.readouterr().err
    assert _labels(out) == labels and (out / "summary.json").is_file()


def test_ctrl_c_as_a_ray_job_ends_gives_a_status_that_says_what_happened(tmp_path, weights):
    pytest.importorskip("ray", reason='the ray extra is not installed (pip install -e ".[ray]")')
    a = _clip(tmp_path / "a.mp4", 1)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = _argv([a], out, weights, "--workers", "1", "--no-overlay")
    proc = subprocess.Popen([sys.executable, "-m", "bmvseg.cli.main", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        t0 = time.monotonic()
        while not (out / "summary.json").exists() and proc.poll() is None:
            assert time.monotonic() - t0 < 240, "the job did not finish"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)  # as Ray stops, after every output was written
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode in (0, 130), (proc.returncode, stderr)
    assert "Traceback" not in stderr
    if proc.returncode == 130:
        assert "interrupted" in stderr
    elif "interrupted" in stderr:
        assert "the job is complete" in stderr
    assert json.loads((out / "summary.json").read_text())["state"] == "complete"


def test_a_job_names_a_damaged_video(tmp_path, weights, capsys):
    from test_hostile_inputs import _damaged_copies

    from bmvseg.video.reader import VideoReader

    frames, _ = moving_texture_clip("object", 96, 128, 30, seed=2, speed=2.0)
    clean = tmp_path / "clean.h264"
    encode_video(frames, clean, container_format="h264",
                 options={**X264_ONE_REF, "keyint": "22", "min-keyint": "22"})  # fmt: skip
    for bad in _damaged_copies(clean, tmp_path, 15):
        with VideoReader(bad) as r:
            for _ in r.frames(images=False):
                pass
            if r.concealed_frames and not r.truncated:
                break
    else:
        pytest.fail("the decoder flagged none of the damaged copies")
    out = tmp_path / "out"
    assert main(_argv([bad, clean], out, weights, "--no-overlay")) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"1 of 2 videos complete; 1 with damaged frames ({bad.name})" in last, last
    job = json.loads((out / "job.json").read_text())
    assert job["damaged"] == [bad.stem] and job["videos"][0]["state"] == "damaged"
    assert job["videos"][0]["summary"]["concealed_frames"]


def test_links_and_fifos_planted_in_a_job_are_never_followed(tmp_path, weights, capsys):
    """A video's folder replaced by a link to a folder elsewhere is refused untouched; a FIFO
    or link at a chunk marker or piece neither hangs resume nor changes anything outside."""
    import shutil

    from conftest import hang_guard
    from test_output_safety import tree

    a, b = _clip(tmp_path / "a.mp4", 1), _clip(tmp_path / "b.mp4", 2)
    out = tmp_path / "out"
    assert main(_argv([a, b], out, weights)) == 0
    ref = _labels(out / "a")
    outside = tmp_path / "outside"
    shutil.copytree(out / "a", outside / "a")
    (outside / "precious.txt").write_text("the user's, elsewhere")
    shutil.rmtree(out / "b")
    (out / "b").symlink_to(outside / "a")
    before = tree(outside)
    capsys.readouterr()
    assert main(_argv([a, b], out, weights, "--overwrite")) == 2
    assert "is not a folder bmvseg made" in capsys.readouterr().err
    assert tree(outside) == before
    (out / "b").unlink()

    (out / "a" / "summary.json").unlink()
    chunks = out / "a" / ".chunks"
    chunks.mkdir()
    os.mkfifo(chunks / "000000-000006.json")
    (chunks / "000006-end.json").symlink_to(outside / "precious.txt")
    (chunks / ".partial-000000-000006.mp4").symlink_to(outside / "precious.txt")
    os.mkfifo(chunks / ".partial-000006-end.json")
    with hang_guard(120, "on a planted FIFO"):
        assert main(_argv([a, b], out, weights, "--resume")) == 0
    assert tree(outside) == before
    assert _labels(out / "a") == ref and not chunks.exists()


def test_ctrl_c_during_a_job_is_130_and_says_how_to_continue(tmp_path, weights):
    a, b = _clip(tmp_path / "a.mp4", 1, frames=60), _clip(tmp_path / "b.mp4", 2, frames=60)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "bmvseg.cli.main",
                             *_argv([a, b], out, weights, "--no-overlay")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        t0 = time.monotonic()
        while not list((out / "a").glob(".chunks/*.json")):
            assert proc.poll() is None and time.monotonic() - t0 < 120, "no chunk finished"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted (pass --resume to continue)" in stdout
    assert stderr.strip().splitlines()[-1] == "bmvseg segment: interrupted"
    assert main(_argv([a, b], out, weights, "--no-overlay", "--resume")) == 0
    assert len(_labels(out / "a")) == len(_labels(out / "b")) == 60
