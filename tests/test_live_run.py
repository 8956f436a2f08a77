"""Live runs: a stream that arrives is segmented as it comes, with a record that is never false.

The sender is written here (as in ``test_live_reader``): an MPEG-TS of a libx264 clip, encoded
once, sent over TCP on 127.0.0.1 or through a pipe, paced by cutting the bytes into one piece
per frame.  What must hold: a live run's labels equal those of the same clip read as a file,
byte for byte; a sender that stops leaves a complete record of what arrived; Ctrl-C and SIGTERM
end a ``bmvseg segment`` process cleanly (130/143, summary ``interrupted``); delays are bounded
as each scheme promises; keep-up lengthens the interval only when the run falls behind, keeps
the backlog bounded and counts every frame it drops.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest
from conftest import hang_guard
from test_live_reader import FPS, OPTIONS, send, tcp_sender

import bmvseg
from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import BmvsegError
from bmvseg.run import RunOptions, segment_to_dir
from bmvseg.run.live import LiveOptions, Stop, live_input, segment_live_to_dir

HANG_S = 120
# zerolatency: each frame's packets leave the encoder at once (x264's look-ahead would hold
# 40 frames back, and a paced sender would arrive in one burst).
LIVE = {**OPTIONS["one-ref"], "tune": "zerolatency"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # fmt: skip


@pytest.fixture(scope="module")
def clip_ts(tmp_path_factory) -> tuple[Path, int]:
    """An MPEG-TS of 36 frames (path, frame count)."""
    frames = moving_texture_clip("object", 96, 128, 36, seed=4, speed=1.5)[0]
    path = tmp_path_factory.mktemp("clip") / "clip.ts"
    send(frames, str(path), LIVE)
    return path, len(frames)


def paced(data: bytes, frames: int, fps: float, upto: float = 1.0):
    """A sender of ``data`` in ``frames`` pieces, ``1 / fps`` apart (``upto``: the share of the
    stream sent before hanging up)."""

    def run(conn: socket.socket) -> None:
        step = -(-len(data) // frames)
        stop = int(len(data) * upto)
        for i in range(0, stop, step):
            conn.sendall(data[i : min(i + step, stop)])
            time.sleep(1 / fps)

    return run


def labels(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "labels").iterdir())}


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def options(weights: Path, **kw) -> RunOptions:
    return RunOptions(weights=str(weights), **{"interval": 4, **kw})


def overlay_frames(path_or_bytes) -> int:
    with av.open(path_or_bytes, format="mpegts") as inp:
        return sum(1 for _ in inp.decode(video=0))


@pytest.mark.parametrize("scheme", ["inter-bmv", "prop-bmv"])
def test_tcp_run_equals_the_file(scheme, clip_ts, weights, tmp_path):
    path, n = clip_ts
    opts = options(weights, scheme=scheme)
    segment_to_dir(path, tmp_path / "file", opts)
    with hang_guard(HANG_S, "a live run"), tcp_sender(paced(path.read_bytes(), n, 4 * FPS)) as url:
        got = segment_live_to_dir(url, tmp_path / "live", opts, LiveOptions(timeout=10))
    assert labels(tmp_path / "live") == labels(tmp_path / "file")
    assert got == summary(tmp_path / "live")
    assert got["state"] == "complete" and got["complete"] and got["live"]
    assert got["frames"] == got["frames_received"] == n and got["frames_dropped"] == 0
    assert got["latency_ms"]["frames"] == n and got["stopped_by"] is None
    assert overlay_frames(str(tmp_path / "live" / "overlay.ts")) == n
    file_classes = (tmp_path / "file" / "classes.json").read_text()
    assert (tmp_path / "live" / "classes.json").read_text() == file_classes  # the same legend
    assert got["keyframes"] == summary(tmp_path / "file")["keyframes"]  # reasons included


def test_pipe_through_the_command_line_equals_the_file(clip_ts, weights, tmp_path):
    """``cat clip.ts | bmvseg segment - -o out``; and ``--resume`` of a live input is refused."""
    path, n = clip_ts
    segment_to_dir(path, tmp_path / "file", options(weights))
    cmd = [sys.executable, "-m", "bmvseg.cli.main", "segment", "-", "-o", str(tmp_path / "live"),
           "--weights", str(weights), "-k", "4"]  # fmt: skip
    with open(path, "rb") as stdin:
        done = subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, env=ENV,
                              timeout=HANG_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert labels(tmp_path / "live") == labels(tmp_path / "file")
    rec = summary(tmp_path / "live")
    assert rec["state"] == "complete" and rec["frames"] == n and rec["video"] == "<stdin>"
    assert "delay p50" in done.stdout
    with open(path, "rb") as stdin:
        done = subprocess.run([*cmd, "--resume"], stdin=stdin, capture_output=True, text=True,
                              env=ENV, timeout=HANG_S)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().startswith("bmvseg segment: error: --resume: <stdin> is a live")
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("how", ["hangs up", "stalls"])
def test_a_sender_that_stops_leaves_a_complete_record(how, clip_ts, weights, tmp_path):
    path, n = clip_ts
    data = path.read_bytes()
    held = threading.Event()
    send_half = paced(data, n, 4 * FPS, upto=0.5)

    def run(conn: socket.socket) -> None:
        send_half(conn)
        if how == "stalls":
            held.wait(HANG_S)

    with hang_guard(HANG_S, "a sender that stops"), tcp_sender(run) as url:
        got = segment_live_to_dir(url, tmp_path / "out", options(weights), LiveOptions(timeout=1))
        held.set()
    assert 0 < got["frames"] < n and got["frames"] == got["frames_received"]
    assert sorted(labels(tmp_path / "out")) == [f"{i:06d}.png" for i in range(got["frames"])]
    assert got["keyframes"][-1]["reason"] == "end"  # the last interval closed: none left out
    # A hang-up inside a frame's packets leaves it concealed (damaged); a stall is a time-out.
    assert got["state"] in (("ended early",) if how == "stalls" else ("complete", "damaged"))
    assert got == summary(tmp_path / "out")


def test_the_delay_of_each_scheme(clip_ts, weights, tmp_path):
    """Paced at the clip's rate: inter-BMV waits for the keyframe closing each interval, so its
    delay is about the interval plus processing; prop-BMV's is processing alone."""
    path, n = clip_ts
    k = 6
    got = {}
    for scheme in ("inter-bmv", "prop-bmv"):
        with hang_guard(HANG_S, "a paced stream"), \
                tcp_sender(paced(path.read_bytes(), n, FPS)) as url:  # fmt: skip
            got[scheme] = segment_live_to_dir(url, tmp_path / scheme, options(
                weights, scheme=scheme, interval=k), LiveOptions(timeout=10))["latency_ms"]
    inter, prop = got["inter-bmv"], got["prop-bmv"]
    slack_ms = 1500  # processing (the first keyframe warms the model up) on a busy machine
    assert inter["max_ms"] <= 1000 * k / FPS + slack_ms
    assert inter["p95_ms"] >= 1000 * (k - 2) / FPS  # frames did wait for their keyframe
    assert prop["max_ms"] <= slack_ms and prop["p50_ms"] < inter["p50_ms"]


def test_keep_up_against_a_sender_faster_than_the_run(weights, tmp_path):
    """200 frames/s for 180 frames, then the clip's own 15 frames/s for 60 more: the interval
    lengthens while the run falls behind, and comes back to -k once it has caught up."""
    fast, slow = 180, 60
    frames = moving_texture_clip("object", 96, 128, 24, seed=5, speed=1.5)[0] * 10
    path = tmp_path / "fast.ts"
    send(frames, str(path), LIVE)
    data = path.read_bytes()
    cut = len(data) * fast // len(frames)
    opts = options(weights, interval=2, max_interval=16)
    told: list[str] = []

    def sender(conn: socket.socket) -> None:
        paced(data[:cut], fast, 200.0)(conn)
        paced(data[cut:], slow, FPS)(conn)

    with hang_guard(HANG_S, "a fast sender"), tcp_sender(sender) as url:
        got = segment_live_to_dir(url, tmp_path / "out", opts,
                                  LiveOptions(timeout=10, keep_up=True), notice=told.append)
    keep, backlog = got["keep_up"], got["backlog"]
    assert keep["changes"] and max(c["interval"] for c in keep["changes"]) > 2
    assert all(2 <= c["interval"] <= 16 for c in keep["changes"])
    assert "keep-up" in {k["reason"] for k in got["keyframes"]}
    assert backlog["max"] <= backlog["capacity"] == 32  # bounded, measured
    # Never silently: every frame that arrived is labelled or counted as dropped.
    assert got["frames"] + got["frames_dropped"] == got["frames_received"] == len(frames)
    written = labels(tmp_path / "out")
    assert len(written) == got["frames"]
    dropped = {i for first, last in got["dropped_frames"] for i in range(first, last + 1)}
    assert len(dropped) == got["frames_dropped"]
    assert not dropped & {int(name[:6]) for name in written}
    if dropped:
        assert any("dropped" in line for line in told)
    # Slack once the burst is over: back to -k, one keyframe at a time.
    assert keep["current"] == 2 and keep["changes"][-1]["interval"] == 2
    assert keep["changes"][-1]["backlog"] <= 1


def test_keep_up_against_a_slow_sender_keeps_the_interval(clip_ts, weights, tmp_path):
    path, n = clip_ts  # a third of the clip's rate: slow even on a machine shared many ways
    with hang_guard(HANG_S, "a slow sender"), \
            tcp_sender(paced(path.read_bytes(), n, FPS / 3)) as url:  # fmt: skip
        got = segment_live_to_dir(url, tmp_path / "out", options(weights, interval=3),
                                  LiveOptions(timeout=10, keep_up=True))  # fmt: skip
    assert got["keep_up"]["changes"] == [] and got["frames_dropped"] == 0
    assert {k["reason"] for k in got["keyframes"]} <= {"start", "interval", "end"}
    placed = [k["index"] for k in got["keyframes"] if k["reason"] != "end"]
    assert placed == list(range(0, n, 3))


def test_overlay_sent_to_a_url(clip_ts, weights, tmp_path):
    path, n = clip_ts
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(HANG_S)
    received = bytearray()

    def listen() -> None:
        conn, _ = server.accept()
        with conn:
            while chunk := conn.recv(65536):
                received.extend(chunk)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    target = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    with hang_guard(HANG_S, "an overlay URL"), tcp_sender(paced(path.read_bytes(), n, 4 * FPS)) \
            as url:  # fmt: skip
        got = segment_live_to_dir(url, tmp_path / "out", options(weights),
                                  LiveOptions(timeout=10, overlay_url=target))  # fmt: skip
    thread.join(HANG_S)
    server.close()
    assert got["overlay"] == target and not (tmp_path / "out" / "overlay.ts").exists()
    assert overlay_frames(io.BytesIO(bytes(received))) == n
    with hang_guard(HANG_S, "a refused overlay URL"), \
            tcp_sender(paced(path.read_bytes(), n, 4 * FPS)) as url:  # fmt: skip
        with pytest.raises(BmvsegError, match="cannot send the overlay to tcp://127.0.0.1:9: "):
            segment_live_to_dir(url, tmp_path / "refused", options(weights),
                                LiveOptions(timeout=10, overlay_url="tcp://127.0.0.1:9"))
    rec = summary(tmp_path / "refused")  # not left saying "running"
    assert rec["state"] == "failed" and not rec["complete"] and "overlay" in rec["error"]


def test_stop_ends_the_run_with_what_was_read(clip_ts, weights, tmp_path):
    """The Python API's stop (what a signal sets): the frames read are labelled, the record
    says interrupted."""
    path, n = clip_ts
    stop = Stop()
    seen: list[int] = []

    def progress(done: int, status: str) -> None:
        seen.append(done)
        if done == 10:  # meanwhile summary.json says the run goes on
            rec = summary(tmp_path / "out")
            assert rec["state"] == "running" and not rec["complete"] and "delay" in status
            stop()

    with hang_guard(HANG_S, "a stopped run"), tcp_sender(paced(path.read_bytes(), n, FPS)) as url:
        got = segment_live_to_dir(url, tmp_path / "out", options(weights), LiveOptions(timeout=10),
                                  stop=stop, progress=progress)  # fmt: skip
    assert got["state"] == "interrupted" and got["complete"] and got["stopped_by"] is None
    assert 10 <= got["frames"] == got["frames_received"] < n
    assert len(labels(tmp_path / "out")) == got["frames"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_command_finishes_cleanly(sig, weights, tmp_path):
    frames = moving_texture_clip("object", 96, 128, 24, seed=6, speed=1.5)[0] * 20
    path = tmp_path / "long.ts"
    send(frames, str(path), LIVE)
    out = tmp_path / "out"
    with hang_guard(HANG_S, "a signalled run"), \
            tcp_sender(paced(path.read_bytes(), len(frames), FPS)) as url:  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "bmvseg.cli.main", "segment", url, "-o", str(out),
             "--weights", str(weights), "-k", "4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
        try:
            deadline = time.monotonic() + HANG_S / 2
            while time.monotonic() < deadline:
                rec = summary(out) if (out / "summary.json").exists() else {"frames": 0}
                if rec["frames"] >= 8:
                    break
                time.sleep(0.2)
            proc.send_signal(sig)
            stdout, stderr = proc.communicate(timeout=HANG_S / 2)
        finally:
            proc.kill()
    assert proc.returncode == 128 + sig, stderr
    rec = summary(out)
    assert rec["state"] == "interrupted" and rec["stopped_by"] == sig.name and rec["complete"]
    assert 8 <= rec["frames"] == rec["frames_received"] < len(frames)
    assert len(labels(out)) == rec["frames"]
    assert "Traceback" not in stderr and f"stopped by {sig.name}" in stderr
    assert overlay_frames(str(out / "overlay.ts")) == rec["frames"]


def test_the_python_api_yields_as_frames_arrive(clip_ts, weights):
    """``bmvseg.segment("tcp://...")`` gives the file's labels; a non-seekable file object
    with ``live=True`` yields its first result while the sender still holds the rest back."""
    path, n = clip_ts
    kw = {"weights": str(weights), "interval": 4, "scheme": "prop-bmv"}
    expected = [r.labels.tobytes() for r in bmvseg.segment(str(path), **kw)]
    with hang_guard(HANG_S, "the API on a URL"), \
            tcp_sender(paced(path.read_bytes(), n, 4 * FPS)) as url:  # fmt: skip
        got = [r.labels.tobytes() for r in bmvseg.segment(url, timeout=10, **kw)]
    assert got == expected
    data = path.read_bytes()
    read_fd, write_fd = os.pipe()
    first = threading.Event()

    def writer() -> None:
        with open(write_fd, "wb") as out:
            out.write(data[: len(data) // 2])
            out.flush()
            first.wait(HANG_S)
            out.write(data[len(data) // 2 :])

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with hang_guard(HANG_S, "the API on a pipe"), open(read_fd, "rb", buffering=0) as pipe:
        results = []
        for res in bmvseg.segment(pipe, live=True, **kw):
            if not first.is_set():
                assert res.index == 0  # the second half has not been sent yet
                first.set()
            results.append(res.labels.tobytes())
    thread.join(HANG_S)
    assert results == expected


def test_a_url_that_never_answers_is_one_line(weights, tmp_path):
    from bmvseg.cli.main import main

    def silent(conn: socket.socket) -> None:
        conn.recv(1)

    with hang_guard(HANG_S, "a silent sender"), tcp_sender(silent) as url:
        with pytest.raises(BmvsegError, match="no answer within 1 s"):
            segment_live_to_dir(url, tmp_path / "out", options(weights), LiveOptions(timeout=1))
    assert not (tmp_path / "out").exists()  # nothing claimed before the stream answered
    assert main(["segment", str(tmp_path), "-o", str(tmp_path / "o"), "--keep-up"]) == 2
    assert live_input("-") and live_input("rtsp://cam/s?x=1") and not live_input(str(tmp_path))
    if Path("/dev/null").exists():  # a character device is read as a camera would be
        assert live_input("/dev/null")
        t0 = time.monotonic()
        assert main(["segment", "/dev/null", "-o", str(tmp_path / "dev"), "--timeout", "1"]) == 2
        assert time.monotonic() - t0 < 30 and not (tmp_path / "dev").exists()


def test_reconnect_goes_on_where_the_stream_broke_off(clip_ts, weights, tmp_path):
    """``reconnect``: the URL is opened again when its stream ends; indices and times go on, the
    first frame after the break is a keyframe (``"reconnect"``); when no sender answers any
    more, the run ends cleanly with everything it labelled."""
    path, n = clip_ts
    data = path.read_bytes()
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(HANG_S)
    url = f"tcp://127.0.0.1:{server.getsockname()[1]}"

    def serve() -> None:
        for share in (0.5, 1.0):  # the first connection breaks off half-way
            conn, _ = server.accept()
            with conn:
                paced(data, n, 4 * FPS, upto=share)(conn)
        server.close()  # then nothing listens: the next attempt is refused

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    told: list[str] = []
    with hang_guard(HANG_S, "a reconnecting run"):
        got = segment_live_to_dir(url, tmp_path / "out", options(weights),
                                  LiveOptions(timeout=5, reconnect=2), notice=told.append)
    thread.join(HANG_S)
    assert got["reconnects"] == 1 and n < got["frames"] == got["frames_received"] < 2 * n
    reasons = {k["index"]: k["reason"] for k in got["keyframes"]}
    assert "reconnect" in reasons.values()
    assert sorted(labels(tmp_path / "out")) == [f"{i:06d}.png" for i in range(got["frames"])]
    assert sum("reconnecting" in line for line in told) == 2  # one worked, one was refused
    assert got["complete"] and got["state"] in ("complete", "damaged", "ended early")
