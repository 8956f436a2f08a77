"""Live inputs: a stream that arrives is read once, in order, exactly as the same clip as a file.

The sender is written here: PyAV muxes MPEG-TS of a libx264 clip, frame by frame at a pace, into
a TCP connection on 127.0.0.1 or a pipe.  What must hold: the frames (index, time, type, image)
and motion fields equal those of the same clip read as a file; nothing is counted ahead
(``frame_count`` is None); a URL that never answers is one line after the timeout; a sender that
stalls or hangs up ends the frames cleanly with what arrived.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import pytest
from conftest import hang_guard

from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import VideoError
from bmvseg.video.encode import X264_ONE_REF, x264_params
from bmvseg.video.reader import VideoReader

H, W, N, FPS = 96, 128, 24, 15.0
HANG_S = 60
# One-reference H.264 (native vectors) and x264's defaults (B-frames: re-encoded).
OPTIONS = {"one-ref": {**X264_ONE_REF, "threads": "1"}, "b-frames": {"threads": "1"}}
# Frames a sender sends before it waits for the reader's first frame: more than the stream
# time the reader lets FFmpeg analyse at open (0.5 s), fewer than the clip.
HEAD = 12


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return moving_texture_clip("object", H, W, N, seed=4, speed=1.5)[0]


def send(
    frames: list[np.ndarray],
    dest: str | BinaryIO,
    options: dict,
    pace: float = 0.0,
    after: Callable[[int], None] | None = None,
) -> None:
    """Mux the frames as MPEG-TS into ``dest`` one at a time, ``pace`` seconds apart, each
    frame's packets sent at once (``after(i)`` runs once frame ``i`` is out)."""
    with av.open(dest, "w", format="mpegts", options={"flush_packets": "1"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(FPS))
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = x264_params(options)
        for i, rgb in enumerate(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
            if after is not None:
                after(i)
            time.sleep(pace)
        for packet in stream.encode():
            out.mux(packet)


def key(frame) -> tuple:
    image = None if frame.image is None else frame.image.tobytes()
    return (frame.index, round(frame.time, 9), frame.pict_type, frame.damaged,
            frame.motion.mv.tobytes(), frame.motion.valid.tobytes(), image)


def read_file(path: Path, images: bool = True) -> list[tuple]:
    with VideoReader(path) as reader:
        return [key(f) for f in reader.frames(images=images)]


@contextmanager
def tcp_sender(run: Callable[[socket.socket], None]) -> Iterator[str]:
    """A listener on 127.0.0.1 that runs ``run`` on the first connection; yields its URL."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        try:
            server.settimeout(HANG_S)
            conn, _ = server.accept()
            with conn:
                run(conn)
        except (OSError, av.FFmpegError):  # the reader hung up first: what a sender then sees
            pass
        finally:
            done.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        done.wait(HANG_S)


@pytest.mark.parametrize("kind", ["one-ref", "b-frames"])
def test_tcp_stream_equals_the_file(kind, clip, tmp_path):
    path = tmp_path / "clip.ts"
    send(clip, str(path), OPTIONS[kind])
    expected = read_file(path)

    def stream(conn: socket.socket) -> None:
        with conn.makefile("wb", buffering=0) as out:
            send(clip, out, OPTIONS[kind], pace=1 / (4 * FPS))

    with hang_guard(HANG_S, "reading a TCP stream"), tcp_sender(stream) as url:
        with VideoReader(url, timeout=10) as reader:
            assert reader.live and reader.frame_count is None
            assert (reader.width, reader.height) == (W, H)
            got = [key(f) for f in reader.frames()]
            assert not reader.truncated and reader.truncation_reason is None
            with pytest.raises(VideoError, match="read once"):  # the frames are gone
                list(reader.frames())
    assert len(got) == N and got == expected


@pytest.mark.parametrize("kind", ["one-ref", "b-frames"])
def test_pipe_and_unseekable_file_object_equal_the_file(kind, clip, tmp_path):
    path = tmp_path / "clip.ts"
    send(clip, str(path), OPTIONS[kind])
    expected = read_file(path)
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        with open(write_fd, "wb") as out:
            send(clip, out, OPTIONS[kind], pace=1 / (4 * FPS))

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with hang_guard(HANG_S, "reading a pipe"), open(read_fd, "rb") as pipe:
        with VideoReader(pipe, live=True) as reader:
            got = [key(f) for f in reader.frames()]
            assert reader.frame_count is None and not reader.truncated
    thread.join(HANG_S)
    assert got == expected

    class Unseekable(io.RawIOBase):  # a socket-like object: read, no seek
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self._data.read(min(len(buffer), 1000))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    with pytest.raises(VideoError, match="not seekable"):  # a file object is a file unless told
        VideoReader(Unseekable(path.read_bytes()))
    with VideoReader(Unseekable(path.read_bytes()), live=True) as reader:
        assert [key(f) for f in reader.frames()] == expected


def test_standard_input(clip, tmp_path):
    """``-`` reads the process's standard input (what ``cat clip.ts | bmvseg ...`` gives)."""
    path = tmp_path / "clip.ts"
    send(clip, str(path), OPTIONS["one-ref"])
    digest = hashlib.sha256(repr(read_file(path, images=False)).encode()).hexdigest()
    code = (
        "import hashlib\n"
        "from bmvseg.video.reader import VideoReader\n"
        f"{inspect.getsource(key)}\n"
        "with VideoReader('-') as r:\n"
        "    keys = [key(f) for f in r.frames(images=False)]\n"
        "    assert r.live and r.frame_count is None and r.name == '<stdin>'\n"
        "print(hashlib.sha256(repr(keys).encode()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with open(path, "rb") as stdin:
        done = subprocess.run(
            [sys.executable, "-c", code], stdin=stdin, capture_output=True, text=True,
            env=env, timeout=HANG_S,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == digest
    silent = (  # a writer that never writes: the wait ends after the time-out, with one line
        "from bmvseg.errors import VideoError\n"
        "from bmvseg.video.reader import VideoReader\n"
        "try:\n"
        "    VideoReader('-', timeout=1)\n"
        "except VideoError as exc:\n"
        "    print(exc)\n"
    )
    read_fd, write_fd = os.pipe()
    try:
        done = subprocess.run(
            [sys.executable, "-c", silent], stdin=read_fd, capture_output=True, text=True,
            env=env, timeout=HANG_S,
        )
    finally:
        os.close(read_fd)
        os.close(write_fd)
    assert done.stdout.strip() == "<stdin>: no answer within 1 s (is the sender running?)"


def test_a_url_that_never_answers_is_one_line_after_the_timeout():
    def silent(conn: socket.socket) -> None:
        conn.recv(1)  # accepts, sends nothing, waits for the reader to hang up

    with hang_guard(HANG_S, "a silent sender"), tcp_sender(silent) as url:
        t0 = time.perf_counter()
        with pytest.raises(VideoError, match="no answer within 1 s") as exc:
            VideoReader(url, timeout=1)
        assert time.perf_counter() - t0 < 10
    assert url in str(exc.value) and "\n" not in str(exc.value)
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with pytest.raises(VideoError, match="cannot open the stream") as exc:
        VideoReader(f"tcp://127.0.0.1:{port}", timeout=1)
    assert "\n" not in str(exc.value)
    with pytest.raises(VideoError, match="timeout"):
        VideoReader("tcp://127.0.0.1:9", timeout=0)


@pytest.mark.parametrize("how", ["hangs up", "stalls"])
def test_a_sender_that_stops_ends_the_frames_cleanly(how, clip, tmp_path):
    """What arrived is yielded, as in the file; then the frames end, never an error."""
    path = tmp_path / "clip.ts"
    send(clip, str(path), OPTIONS["one-ref"])
    expected = read_file(path, images=False)
    data = path.read_bytes()
    stalled = threading.Event()

    def stream(conn: socket.socket) -> None:
        conn.sendall(data[: len(data) // 2])
        if how == "stalls":
            stalled.wait(HANG_S)  # silent until the reader has given up

    with hang_guard(HANG_S, "a sender that stops"), tcp_sender(stream) as url:
        with VideoReader(url, timeout=1) as reader:
            got = [key(f) for f in reader.frames(images=False)]
            stalled.set()
            truncated, why = reader.truncated, reader.truncation_reason
    assert 0 < len(got) < N
    clean = [k for k in got if not k[3]]  # the frame cut in half is concealed, and flagged
    assert clean == expected[: len(clean)] and len(clean) >= len(got) - 1
    if how == "stalls":
        assert truncated and why == "no data for 1 s"
    else:  # a closed connection is where the stream ends
        assert not truncated


def test_the_first_frame_comes_before_the_stream_ends(clip):
    """The reader yields frame 0 while the sender still holds most of the clip back."""
    first = threading.Event()
    waited: list[bool] = []

    def stream(conn: socket.socket) -> None:
        def hold(i: int) -> None:
            if i == HEAD:
                waited.append(first.wait(HANG_S / 2))

        with conn.makefile("wb", buffering=0) as out:
            # zerolatency: x264's lookahead would hold the frames back otherwise
            send(clip, out, {**OPTIONS["one-ref"], "tune": "zerolatency"}, after=hold)

    with hang_guard(HANG_S, "a stream held back"), tcp_sender(stream) as url:
        with VideoReader(url, timeout=HANG_S) as reader:
            for frame in reader.frames(images=False):
                if frame.index == 0:
                    assert not waited  # the sender is still holding back
                    first.set()
            assert frame.index == N - 1
    assert waited == [True]
