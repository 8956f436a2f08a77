"""Progress: a bar under a terminal, plain lines every N seconds in a log, none when asked."""

from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from bmvseg import progress
from bmvseg.data.textures import moving_texture_clip
from bmvseg.video.encode import X264_ONE_REF, encode_video

FRAMES = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    encode_video(moving_texture_clip("object", 64, 96, FRAMES, seed=5, speed=1.5)[0], path,
                 options=X264_ONE_REF)  # fmt: skip
    return path


def _segment_under_a_terminal(clip: Path, out: Path, weights: Path, *extra: str
                              ) -> tuple[int, str, str]:  # fmt: skip
    """``bmvseg segment`` with standard error on a pseudo-terminal: (status, stdout, stderr)."""
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100x24
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bmvseg.cli.main", "segment", str(clip), "-o", str(out),
         "--weights", str(weights), "-k", "3", "--no-overlay", *extra],
        stdout=subprocess.PIPE, stderr=secondary, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal (EIO on Linux)
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(primary)
    out_text = proc.stdout.read().decode()
    proc.stdout.close()
    return proc.wait(timeout=60), out_text, seen.decode(errors="replace")


def test_a_bar_is_drawn_on_a_terminal_and_none_with_no_progress(tmp_path, clip, weights):
    rc, out, err = _segment_under_a_terminal(clip, tmp_path / "a", weights)
    assert rc == 0, err
    assert "\r" in err and f"{FRAMES}/{FRAMES}" in err and "frame/s" in err, err
    assert "inter-bmv k=3" in err
    assert f"{FRAMES} frames in" in out  # the closing line is unchanged, on stdout
    rc, out, err = _segment_under_a_terminal(clip, tmp_path / "b", weights, "--no-progress")
    assert rc == 0, err
    assert f"{FRAMES}/{FRAMES}" not in err and "\r" not in err, err
    assert f"{FRAMES} frames in" in out


def test_a_log_gets_plain_lines_every_period_and_none_when_quiet(tmp_path, clip, weights):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "bmvseg.cli.main", "segment", str(clip), "--weights",
            str(weights), "-k", "3", "--no-overlay"]  # fmt: skip
    run = subprocess.run([*base, "-o", str(tmp_path / "a"), "--progress-every", "0"],
                         capture_output=True, text=True, env=env, timeout=180)  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("inter-bmv k=3: ")]
    assert "\r" not in run.stderr and len(lines) >= FRAMES, run.stderr
    assert f"{FRAMES}/{FRAMES} frames (100%)" in lines[-1] and "done in" in lines[-1]
    assert "ETA" in lines[0]
    run = subprocess.run([*base, "-o", str(tmp_path / "b"), "--progress-every", "0", "-q"],
                         capture_output=True, text=True, env=env, timeout=180)  # fmt: skip
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert run.stdout.strip().splitlines()[-1].startswith(f"{FRAMES} frames in")
    assert "notice" not in run.stdout


def test_lines_follow_the_period_and_a_short_job_in_a_log_stays_silent(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    progress.configure(every=2.0)
    try:
        stream = io.StringIO()  # not a terminal
        bar = progress.bar(total=10, desc="work", unit="frame", stream=stream)
        for t in (0.5, 1.0, 2.5, 3.0, 4.5):
            now[0] = t
            bar.update(2)
        now[0] = 6.0
        bar.close()
        lines = stream.getvalue().splitlines()
        assert [ln.split(",")[0] for ln in lines] == ["work: 6/10 frames (60%)",
                                                      "work: 10/10 frames (100%)",
                                                      "work: 10/10 frames (100%)"]  # fmt: skip
        assert lines[-1].endswith("done in 0:06")
        quiet = io.StringIO()
        short = progress.bar(range(3), desc="short", stream=quiet)
        assert list(short) == [0, 1, 2] and quiet.getvalue() == ""
        progress.configure(enabled=False)
        off = io.StringIO()
        silent = progress.bar(total=3, stream=off)
        silent.update(3)
        silent.close()
        assert off.getvalue() == "" and silent.n == 3
    finally:
        progress.configure()


def test_a_job_in_a_log_counts_videos_and_frames(tmp_path, clip, weights):
    folder = tmp_path / "footage"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(clip.read_bytes())
    run = subprocess.run(
        [sys.executable, "-m", "bmvseg.cli.main", "segment", str(folder), "-o",
         str(tmp_path / "out"), "--weights", str(weights), "--no-overlay", "--progress-every", "0"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert f"{2 * FRAMES}/{2 * FRAMES} frames (100%)" in last and "videos 2/2" in last, last


def test_motion_reports_progress_in_a_log(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "bmvseg.cli.main", "motion", "--demo", "-o",
         str(tmp_path / "m.npz"), "--progress-every", "0"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert any(ln.startswith("motion: ") and "done in" in ln for ln in run.stderr.splitlines())
