"""``bmvseg segment``'s output is never half-true: killed runs resume to the same result,
existing output is not silently replaced, and write failures end with one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.video.encode import X264_ONE_REF, encode_video

H, W = 96, 128
K = 5


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]




def _video(path: Path, frames: int) -> Path:
    encode_video(
        moving_texture_clip("object", H, W, frames, seed=5, speed=1.5)[0],
        path,
        options=X264_ONE_REF,
    )
    return path


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> Path:
    return _video(tmp_path_factory.mktemp("v") / "short.mp4", 8)


def _argv(video: Path, out: Path, weights: Path | str, *extra: str) -> list[str]:
    return ["segment", str(video), "-o", str(out), "--weights", str(weights), "-k", str(K), *extra]


def _cli(*args: str, timeout: float = 120) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: fast on a shared machine
    return subprocess.Popen(
        [sys.executable, "-m", "bmvseg.cli.main", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _labels(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "labels").iterdir())}


def test_resume_after_sigkill_gives_the_uninterrupted_output(tmp_path, weights):
    n = 150  # long enough to be caught mid-run even on a fast machine (polled every 2 ms)
    video = _video(tmp_path / "long.mp4", n)
    ref, out = tmp_path / "ref", tmp_path / "out"
    rc, _, err = _finish(_cli(*_argv(video, ref, weights, "--no-overlay")))
    assert rc == 0, err

    proc = _cli(*_argv(video, out, weights))
    labels = out / "labels"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if labels.is_dir() and sum(not f.startswith(".") for f in os.listdir(labels)) >= n // 3:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it could be killed: use a longer clip"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    done = sorted(p.name for p in labels.iterdir() if not p.name.startswith("."))
    assert n // 3 <= len(done) < n and not (out / "summary.json").exists()
    assert done == [f"{i:06d}.png" for i in range(len(done))]  # a prefix, each file whole

    rc, stdout, err = _finish(_cli(*_argv(video, out, weights, "--resume")))
    assert rc == 0, err
    assert _labels(out) == _labels(ref)  # same names, byte-identical PNGs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["frames"] == n
    assert summary["resumed_from"] > 0 and summary["resumed_from"] % K == 0
    assert not list(out.rglob(".partial-*"))
    import av

    with av.open(str(out / "overlay.mp4")) as ov:  # the overlay covers the whole video again
        assert ov.streams.video[0].frames == n


def test_existing_output_is_refused_then_replaced_only_when_asked(tmp_path, short, weights, capsys):
    out = tmp_path / "out"
    assert main(_argv(short, out, weights, "--no-overlay")) == 0
    before = _labels(out)
    summary = (out / "summary.json").read_bytes()
    capsys.readouterr()

    assert main(_argv(short, out, weights, "--no-overlay")) != 0
    line = _one_line(capsys.readouterr().err)
    assert "--resume" in line and "--overwrite" in line and str(out) in line
    assert _labels(out) == before and (out / "summary.json").read_bytes() == summary

    # --resume of another run (other interval) is refused and leaves that run's files alone
    assert main([*_argv(short, out, weights, "--no-overlay"), "-k", "3", "--resume"]) != 0
    line = _one_line(capsys.readouterr().err)
    assert "different run" in line and "interval" in line
    assert _labels(out) == before and (out / "summary.json").read_bytes() == summary

    # a refused start (bad weights) with --overwrite does not cost the old output anything
    assert main(_argv(short, out, tmp_path / "missing.pt", "--overwrite")) != 0
    assert "missing.pt" in _one_line(capsys.readouterr().err)
    assert _labels(out) == before and (out / "summary.json").read_bytes() == summary

    (out / "labels" / "notes.txt").write_text("the user's, not ours")
    (out / "labels" / f"{99:06d}.png").write_bytes(b"a label of an older run of ours")
    assert main(_argv(short, out, weights, "--no-overlay", "--overwrite")) == 0
    assert (out / "labels" / "notes.txt").read_text() == "the user's, not ours"  # never ours
    labels = _labels(out)
    del labels["notes.txt"]
    assert labels == before  # our stale label is gone, the labels are the same
    assert json.loads((out / "summary.json").read_text())["complete"] is True


def test_output_path_that_cannot_be_a_directory(tmp_path, short, weights, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for target in (blocker, blocker / "out"):
        assert main(_argv(short, target, weights)) != 0
        line = _one_line(capsys.readouterr().err)
        assert line.startswith("bmvseg segment: error:") and str(blocker) in line, line
    assert blocker.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_directory(tmp_path, short, weights, capsys):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        assert main(_argv(short, parent / "out", weights)) != 0
        line = _one_line(capsys.readouterr().err)
        assert "Permission denied" in line and str(parent) in line
    finally:
        parent.chmod(0o755)


@pytest.fixture
def tiny_fs(tmp_path) -> Path:
    """A 256 KiB tmpfs (needs root and mount rights, as in a privileged CI container)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs to fill: {exc}")
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        # lazy: a writer left open by the failure (VideoWriter.close does not close its
        # container when the final flush fails) must not keep the mount alive
        subprocess.run(["umount", "-l", str(mnt)], check=False, timeout=30)


@pytest.mark.parametrize("overlay", [False, True])
def test_disk_full_ends_with_one_line_and_no_summary(tiny_fs, tmp_path, weights, overlay, capsys):
    video = _video(tmp_path / "v.mp4", 24)
    (tiny_fs / "filler").write_bytes(b"\0" * (256 - 24) * 1024)  # leave ~24 KiB
    out = tiny_fs / "out"
    extra = () if overlay else ("--no-overlay",)
    assert main(_argv(video, out, weights, *extra)) != 0
    line = _one_line(capsys.readouterr().err)
    assert "No space left on device" in line and str(out) in line, line
    assert not (out / "summary.json").exists()
    assert not list(out.rglob(".partial-*"))  # no torn file under a temporary name either


def test_malicious_checkpoint_is_refused_in_one_line_and_not_run(tmp_path, short):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": Evil()}, evil)
    rc, _, err = _finish(_cli(*_argv(short, tmp_path / "out", evil)))
    assert rc != 0
    line = _one_line(err)
    assert "evil.pt" in line and "refusing" in line, line
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_unreadable_checkpoint_is_one_line(tmp_path, short, capsys):
    garbage = tmp_path / "noise.pt"
    garbage.write_bytes(os.urandom(4096))
    assert main(_argv(short, tmp_path / "out", garbage)) != 0
    line = _one_line(capsys.readouterr().err)
    assert "noise.pt" in line and "checkpoint" in line, line
    assert not (tmp_path / "out").exists()


def test_decoded_frames_do_not_pile_up_in_a_long_run(tmp_path, weights, monkeypatch):
    """PyAV frames whose vectors were read are reference cycles; the run must collect them
    (``COLLECT_EVERY``) rather than wait for a rare full collection of the whole heap."""
    import gc

    import av

    from bmvseg.output.frames import FrameSink
    from bmvseg.run.iterate import COLLECT_EVERY

    video = _video(tmp_path / "long.mp4", 80)
    alive: list[int] = []
    real_write = FrameSink.write

    def write(self, res):
        if res.index in (40, 79):
            alive.append(sum(isinstance(o, av.VideoFrame) for o in gc.get_objects()))
        return real_write(self, res)

    monkeypatch.setattr(FrameSink, "write", write)
    gc.disable()  # no automatic collection: only the run's own may free the cycles
    try:
        assert main(_argv(video, tmp_path / "out", weights, "--no-overlay")) == 0
    finally:
        gc.enable()
    queued = 2 * 8  # decoded ahead of the model, and results waiting for the writer
    assert len(alive) == 2 and max(alive) <= COLLECT_EVERY + K + 2 + queued, alive


def test_the_python_api_keeps_memory_flat_by_itself(tmp_path, weights):
    """``bmvseg.segment()`` in a caller's own loop frees decoded frames with nothing asked."""
    import gc

    import av

    import bmvseg
    from bmvseg.run.iterate import COLLECT_EVERY

    video = _video(tmp_path / "long.mp4", 80)
    alive = []
    gc.disable()
    try:
        for res in bmvseg.segment(video, weights=str(weights), interval=K):
            if res.index in (40, 79):
                alive.append(sum(isinstance(o, av.VideoFrame) for o in gc.get_objects()))
    finally:
        gc.enable()
    assert len(alive) == 2 and max(alive) <= COLLECT_EVERY + K + 2, alive


def test_concealed_damage_is_reported_and_the_next_clean_frame_is_a_keyframe(
    tmp_path, weights, capsys
):
    """Damage the decoder conceals is not passed off as clean: the frames are listed in
    summary.json and a notice, and the first clean frame after them (the next I-frame) is a
    keyframe, so no clean frame gets features warped from concealed pixels."""
    from test_hostile_inputs import _damaged_copies

    frames, _ = moving_texture_clip("object", 96, 128, 30, seed=2, speed=2.0)
    clean = tmp_path / "clean.h264"
    encode_video(frames, clean, container_format="h264",
                 options={**X264_ONE_REF, "keyint": "22", "min-keyint": "22"})  # fmt: skip
    for bad in _damaged_copies(clean, tmp_path, 15):  # slice 15 = frame 15 (one slice a frame)
        out = tmp_path / f"out-{bad.stem}"
        assert main(_argv(bad, out, weights, "--no-overlay")) == 0
        summary = json.loads((out / "summary.json").read_text())
        if not summary["concealed_frames"]:
            continue  # a flip the decoder cannot see (the documented limit)
        assert summary["complete"] and summary["damaged_frames"]
        assert summary["damaged_frames"] == list(range(summary["concealed_frames"][0], 22))
        keys = {k["index"]: k["reason"] for k in summary["keyframes"]}
        assert keys.get(22) == "after damage"
        out_lines = capsys.readouterr().out.splitlines()
        notices = [ln for ln in out_lines if ln.startswith("bmvseg: notice:")]
        assert len([ln for ln in notices if "concealed damage" in ln]) == 1, notices
        return
    pytest.fail("the decoder flagged none of the damaged copies")


@pytest.mark.parametrize(
    "kwargs",
    [{"interval": "5"}, {"interval": 0}, {"device": "cuda:7"}, {"device": 0}, {"scheme": "x"},
     {"phase": 9}, {"keyframes": "sometimes"}, {"stream": -1}, {"bogus": 1}, {"start": -2}],
)  # fmt: skip
def test_python_api_bad_arguments_are_one_line_errors(short, kwargs) -> None:
    """``bmvseg.segment`` refuses what it cannot honour with a BmvsegError naming it."""
    import bmvseg
    from bmvseg.errors import BmvsegError

    with pytest.raises(BmvsegError) as info:
        list(bmvseg.segment(short, weights="none", **kwargs))
    assert "\n" not in str(info.value)


def test_python_api_bad_sources_are_one_line_errors(tmp_path) -> None:
    import io

    import bmvseg
    from bmvseg.errors import BmvsegError

    class Pipe(io.RawIOBase):  # readable, not seekable: like a socket or a pipe
        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            return 0

    for source in (b"clip.mp4", Pipe(), 3, tmp_path / "missing.mp4"):
        with pytest.raises(BmvsegError):
            list(bmvseg.segment(source, weights="none"))


# -- checked before claiming; a failing thread ends the run (issue 21, item 7) ------------------

WIDE_MODEL_PY = """
import torch
from torch import nn

import bmvseg.models


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.head = nn.Conv2d(8, 300, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def build():
    torch.manual_seed(1)
    return bmvseg.models.split_module(Net(), "body")
"""


@pytest.mark.parametrize("job", [False, True])
def test_a_model_whose_labels_cannot_be_stored_is_refused_before_the_folder_is_touched(
    tmp_path, weights, capsys, job
):
    """300 classes do not fit uint8 label files: refused in one line before ``--overwrite``
    removes anything, for a single run and a job alike (9 frames with B-frames: no hang)."""
    from conftest import hang_guard
    from test_output_safety import tree

    video = tmp_path / "clip.mp4"
    encode_video(moving_texture_clip("object", 120, 160, 9, seed=3)[0], video,
                 options={"crf": "20", "bframes": "2"})  # fmt: skip
    plug = tmp_path / "plug.py"
    plug.write_text(WIDE_MODEL_PY)
    out = tmp_path / "out"
    target = [str(video), str(video.with_name("copy.mp4"))] if job else [str(video)]
    if job:
        video.with_name("copy.mp4").write_bytes(video.read_bytes())
    first = ["segment", *target, "-o", str(out), "--weights", str(weights)]
    assert main(first) == 0
    before = tree(out)
    capsys.readouterr()
    with hang_guard(120, "after an error in one thread"):
        rc = main(["segment", *target, "-o", str(out), "--model", f"{plug}:build", "--overwrite"])
    assert rc == 2
    line = _one_line(capsys.readouterr().err)
    assert "300 classes" in line and "uint8" in line, line
    assert tree(out) == before


def test_the_api_refuses_a_model_whose_labels_cannot_be_stored(tmp_path):
    """``bmvseg.segment`` yields uint8 labels too: 300 classes are one BmvsegError, before any
    frame is decoded."""
    import bmvseg
    from bmvseg.errors import BmvsegError

    video = tmp_path / "clip.mp4"
    encode_video(moving_texture_clip("object", 64, 80, 3, seed=3)[0], video)
    plug = tmp_path / "plug.py"
    plug.write_text(WIDE_MODEL_PY)
    with pytest.raises(BmvsegError, match="300 classes"):
        next(bmvseg.segment(str(video), model=f"{plug}:build"))


def test_an_error_in_the_decode_thread_ends_the_run_at_once():
    """The consumer learns of the producer's error at its next item, not after the queue."""
    import threading

    from conftest import hang_guard

    from bmvseg.run.background import ahead

    taken = threading.Event()

    def items():
        yield 0
        taken.wait(10)
        yield from (1, 2)
        raise ValueError("decode failed")

    with hang_guard(20, "after an error in the decode thread"):
        got = []
        with pytest.raises(ValueError, match="decode failed"):
            for item in ahead(items(), depth=4):
                got.append(item)
                taken.set()
                time.sleep(0.3)  # the error arrives while this item is being worked on
        assert got == [0]


def test_a_consumer_that_stops_never_waits_on_a_full_queue():
    """The model's thread fails with the queue full and the producer done: no hang."""
    from conftest import hang_guard

    from bmvseg.run.background import ahead

    with hang_guard(20, "with the decode thread blocked on a full queue"):
        frames = ahead(iter(range(9)), depth=8)
        assert next(frames) == 0
        time.sleep(0.3)  # the producer has put every item and waits to put the end marker
        frames.close()


def test_an_error_in_the_writer_thread_ends_the_run_with_its_message():
    from conftest import hang_guard

    from bmvseg.run.background import Worker

    def handle(item):
        if item == 2:
            raise OSError(28, "No space left on device")
        time.sleep(0.01)

    with hang_guard(20, "after an error in the writer thread"):
        worker = Worker(handle, depth=2)
        with pytest.raises(OSError, match="No space left"):
            for i in range(1000):
                worker.submit(i)
        worker.stop()
