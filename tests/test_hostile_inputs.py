"""Hostile or unlucky inputs of issue 11 (items 6-10, 12, 15, 16): each generated here.

Damage FFmpeg conceals, audio longer than the video, an absurd frame rate, two video streams,
devices that are not there, a console that cannot print or has gone away, Ctrl-C during the
imports, a FIFO without a writer, and source arguments of the wrong kind.  The outcomes are
the rows of ``docs/inputs.md``.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from conftest import hang_guard

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.devices import resolve_device
from bmvseg.errors import BmvsegError, VideoError
from bmvseg.video.encode import X264_ONE_REF, VideoWriter, encode_video
from bmvseg.video.probe import MAX_FPS
from bmvseg.video.reader import VideoReader, read_motion

HANG_S = 60


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    with hang_guard(HANG_S, "the reader"):
        yield


def clip(h: int = 96, w: int = 128, n: int = 15, seed: int = 0) -> list[np.ndarray]:
    return moving_texture_clip("object", h, w, n, seed=seed, speed=1.5)[0]


def decode_rgb(path: Path) -> list[np.ndarray]:
    """Reference decode, single-threaded, no error options."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_count = 1
        return [f.to_ndarray(format="rgb24") for f in c.decode(s)]


# -- 6: macroblock-level damage that FFmpeg conceals ---------------------------------------------


def _slices(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of every coded slice NAL (types 1 and 5) of an Annex B stream."""
    starts, i = [], 0
    while (j := data.find(b"\x00\x00\x01", i)) >= 0:
        starts.append(j + 3)
        i = j + 3
    ends = [s - 3 - (data[s - 4] == 0 if s >= 4 else 0) for s in starts[1:]] + [len(data)]
    return [(s, e) for s, e in zip(starts, ends, strict=True) if data[s] & 0x1F in (1, 5)]


def _damaged_copies(clean: Path, tmp: Path, nth_slice: int) -> Iterator[Path]:
    """The issue's recipe: 12 bytes XOR 0xA5 inside one slice's data, at several places."""
    data = clean.read_bytes()
    start, end = _slices(data)[nth_slice]
    for k, frac in enumerate((0.2, 0.5, 0.7, 0.35, 0.85)):
        at = start + 8 + int((end - start - 20) * frac)
        bad = bytearray(data)
        bad[at : at + 12] = bytes(b ^ 0xA5 for b in bad[at : at + 12])
        path = tmp / f"damaged{k}.h264"
        path.write_bytes(bytes(bad))
        yield path


@pytest.mark.parametrize(
    "layout",
    [
        # one slice per frame, P-frames only: slice 15 is frame 15
        dict(size=(96, 128), options=X264_ONE_REF),
        # x264's defaults at this size: two slices per frame and B-frames (the issue's case,
        # concealed unflagged while the decoder ran slice-threaded)
        dict(size=(120, 160), options=None),
    ],
    ids=["one-slice", "two-slices-b-frames"],
)
def test_concealed_damage_is_reported_per_frame(layout, tmp_path):
    n = 30
    clean = tmp_path / "clean.h264"
    encode_video(clip(*layout["size"], n=n), clean, container_format="h264",
                 options=layout["options"])
    reference = decode_rgb(clean)
    with VideoReader(clean) as r:
        assert not any(f.damaged for f in r.frames(images=False))
        assert r.damaged_frames == [] and r.damage_notice is None
    nth = 15 if layout["options"] else 2 * 15 + 1
    detected = 0
    for bad in _damaged_copies(clean, tmp_path, nth):
        r = VideoReader(bad)
        frames = list(r.frames())
        if not r.concealed_frames:
            continue  # a flip the decoder cannot see: nothing to report (documented limit)
        detected += 1
        assert len(frames) == n and not r.truncated  # concealment does not end the video
        first = r.concealed_frames[0]
        # every frame from the first concealed one on shows (possibly inherited) concealment:
        # no I-frame follows in these 30 frames, so the whole rest is damaged
        assert r.damaged_frames == list(range(first, n))
        assert [f.index for f in frames if f.damaged] == r.damaged_frames
        assert not np.array_equal(frames[first].image, reference[first])
        # frames well before the damage are exactly the clean stream's (B-frames shown just
        # before a damaged reference may differ too: the documented limit)
        for f in frames[: max(0, first - 3)]:
            assert not f.damaged and np.array_equal(f.image, reference[f.index])
        notice = r.damage_notice
        assert notice and "\n" not in notice and str(first) in notice and bad.name in notice
        assert notice in r.notices
    assert detected >= 2, "the decoder flagged none of the damaged copies"


# -- 7: audio that runs longer than the video ----------------------------------------------------


def _with_audio(path: Path, fmt: str, vcodec: str, acodec: str, extra_s: float) -> Path:
    frames = clip(48, 64, 15)
    with av.open(str(path), "w", format=fmt) as out:
        vs = out.add_stream(vcodec, rate=15)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream(acodec, rate=48000)
        for rgb in frames:
            for p in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        size = audio.codec_context.frame_size or 960
        fmt_name = audio.codec_context.format.name
        dtype = np.int16 if fmt_name.startswith("s16") else np.float32
        planar = audio.codec_context.format.is_planar
        total = int((len(frames) / 15 + extra_s) * 48000)
        for pts in range(0, total, size):
            shape = (2, size) if planar else (1, 2 * size)
            af = av.AudioFrame.from_ndarray(np.zeros(shape, dtype), format=fmt_name,
                                            layout="stereo")
            af.sample_rate, af.pts = 48000, pts
            for p in audio.encode(af):
                out.mux(p)
        for p in audio.encode():
            out.mux(p)
    return path


@pytest.mark.parametrize(
    "name, fmt, vcodec, acodec",
    [
        ("a.mkv", "matroska", "libx264", "aac"),
        ("a.webm", "webm", "libvpx-vp9", "libopus"),
        ("a.ts", "mpegts", "libx264", "aac"),
    ],
)
def test_audio_longer_than_video_is_not_truncation(name, fmt, vcodec, acodec, tmp_path):
    video = _with_audio(tmp_path / name, fmt, vcodec, acodec, extra_s=0.5)
    with av.open(str(video)) as c:  # the premise: the container outlasts the video
        assert c.duration / av.time_base > 15 / 15 + 0.3
    with VideoReader(video) as r:
        frames = list(r.frames(images=False))
        assert len(frames) == 15 and not r.truncated
        assert r.frame_count is None or abs(r.frame_count - 15) <= 1
    mv, _, _, _, info = read_motion(video)
    assert len(mv) == 15 and not info["truncated"]


# -- 8: an absurd average frame rate -------------------------------------------------------------


def _absurd_rate(path: Path, step_ms: int = 66, n: int = 15) -> Path:
    """Matroska declaring a 100000 fps track whose frames are 66 ms apart."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=100000)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(clip(48, 64, n)):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts, vf.time_base = i * step_ms, Fraction(1, 1000)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return path


def test_absurd_frame_rate_is_replaced_by_the_timestamps(tmp_path):
    video = _absurd_rate(tmp_path / "fast.mkv")
    with av.open(str(video)) as c:
        assert float(c.streams.video[0].average_rate) > MAX_FPS  # the premise
    with VideoReader(video) as r:
        assert r.fps == pytest.approx(1000 / 66, rel=1e-3)
        assert r.fps_notice and "fps" in r.fps_notice and "\n" not in r.fps_notice
        assert r.fps_notice in r.notices
        frames = list(r.frames())
    assert len(frames) == 15 and not r.truncated
    # the overlay keeps the input's timestamps and decodes to every frame
    out = tmp_path / "overlay.mp4"
    with VideoWriter(out, fps=r.fps) as writer:
        for f in frames:
            writer.write(f.image, time=f.time)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        times = [float(f.pts * f.time_base) for f in c.decode(s)]
    assert len(times) == 15
    np.testing.assert_allclose(times, [f.time - frames[0].time for f in frames], atol=2e-3)


def test_writer_times_must_be_all_or_none(tmp_path):
    rgb = np.zeros((48, 64, 3), np.uint8)
    with VideoWriter(tmp_path / "a.mp4") as writer:
        writer.write(rgb, time=0.0)
        with pytest.raises(ValueError, match="every frame"):
            writer.write(rgb)
        writer.write(rgb, time=0.0)  # not after the last: moved just after it
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert len(list(c.decode(video=0))) == 2


# -- 9: two video streams ------------------------------------------------------------------------


def _two_streams(path: Path, fmt: str) -> Path:
    """A 64x48 stream first, a 160x120 one second (a preview muxed before the real thing)."""
    sizes = ((48, 64), (120, 160))
    with av.open(str(path), "w", format=fmt) as out:
        streams = []
        for h, w in sizes:
            s = out.add_stream("libx264", rate=15)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.options = {"x264-params": "ref=1:bframes=0"}
            streams.append(s)
        for i in range(10):
            for s, (h, w) in zip(streams, sizes, strict=True):
                rgb = clip(h, w, 10, seed=i % 2)[i]
                for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    out.mux(p)
        for s in streams:
            for p in s.encode():
                out.mux(p)
    return path


@pytest.mark.parametrize("name, fmt", [("two.mkv", "matroska"), ("two.mp4", "mp4")])
def test_two_video_streams_largest_is_read_and_said(name, fmt, tmp_path):
    video = _two_streams(tmp_path / name, fmt)
    with VideoReader(video) as r:
        assert (r.width, r.height, r.stream_index) == (160, 120, 1)
        assert r.stream_notice and "--stream" in r.stream_notice and "160x120" in r.stream_notice
        assert "\n" not in r.stream_notice and r.stream_notice in r.notices
        assert len(list(r.frames(images=False))) == 10 and not r.truncated
    with VideoReader(video, stream=0) as r:
        assert (r.width, r.height, r.stream_index, r.stream_notice) == (64, 48, 0, None)
        first = next(r.frames())
        assert first.image.shape == (48, 64, 3)
    mv, _, _, _, info = read_motion(video, stream=0)
    assert mv.shape[1:3] == (3, 4) and info["stream_index"] == 0
    with pytest.raises(VideoError, match="no video stream 2"):
        VideoReader(video, stream=2)
    with pytest.raises(VideoError, match="stream must be"):
        VideoReader(video, stream="1")  # type: ignore[arg-type]


def test_one_stream_says_nothing(tmp_path):
    video = tmp_path / "one.mp4"
    encode_video(clip(48, 64, 3), video)
    with VideoReader(video) as r:
        assert r.stream_index == 0 and r.stream_notice is None and r.notices == [r.notice] * bool(
            r.notice
        )


# -- 10: devices that are not here ---------------------------------------------------------------


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    missing = ["foo", "cuda:x", "meta", "", "cuda:99"]
    if not torch.cuda.is_available():
        missing += ["cuda", "cuda:0", "cuda:1"]
    elif torch.cuda.device_count() < 2:
        missing.append("cuda:1")
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        missing.append("mps")
    for name in missing:
        with pytest.raises(BmvsegError) as exc:
            resolve_device(name)
        message = str(exc.value)
        assert "\n" not in message and repr(name.strip())[1:-1] in message and "cpu" in message
    for wrong in (0, None, 1.5, ["cpu"]):
        with pytest.raises(BmvsegError, match="device must be a string"):
            resolve_device(wrong)  # type: ignore[arg-type]


# -- 12: the console ------------------------------------------------------------------------------

WEIGHTS_NONE = ("--weights", "none", "--no-overlay")


def test_undecodable_file_name_on_a_strict_utf8_stdout(tmp_path, monkeypatch, capsys):
    """A name that is not UTF-8 arrives with lone surrogates; printing it must not raise."""
    name = os.fsdecode(b"clip-\xff\xfe.mp4")
    video = tmp_path / name
    encode_video(clip(48, 64, 4), video, options=X264_ONE_REF)
    raw = io.BytesIO()
    strict = io.TextIOWrapper(raw, encoding="utf-8", errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", strict)
    out = tmp_path / os.fsdecode(b"out-\xff")  # the final line names the output directory
    rc = main(["segment", str(video), "-o", str(out), *WEIGHTS_NONE])
    monkeypatch.undo()
    assert rc == 0, capsys.readouterr().err
    printed = raw.getvalue().decode("utf-8")  # valid UTF-8: the name came out escaped
    assert "out-\\udcff" in printed
    assert json.loads((out / "summary.json").read_text())["complete"] is True
    # and the one error line on a strict stderr
    raw_err = io.BytesIO()
    strict_err = io.TextIOWrapper(raw_err, "utf-8", "strict", None, True)
    monkeypatch.setattr(sys, "stderr", strict_err)
    rc = main(["segment", str(tmp_path / os.fsdecode(b"gone-\xff.mp4")), "-o", str(out / "x")])
    monkeypatch.undo()
    err = raw_err.getvalue().decode("utf-8")
    assert rc == 2 and err.count("\n") == 1 and "no such file" in err and "\\udcff" in err


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from bmvseg.cli.main import main; "
            "sys.exit(main())", *args]


def test_closed_stdout_does_not_undo_a_completed_run(tmp_path):
    video = tmp_path / "v.mp4"
    encode_video(clip(48, 64, 6), video, options=X264_ONE_REF)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli("segment", str(video), "-o", str(out), *WEIGHTS_NONE),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    proc.stdout.close()  # `| true`: the reader is gone before anything is printed
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=HANG_S) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert json.loads((out / "summary.json").read_text())["complete"] is True


def test_ctrl_c_during_imports_is_one_line_and_130(tmp_path):
    """SIGINT while ``main`` imports torch and the subcommands (the first seconds)."""
    # "ready" is printed from inside main, just before it imports the subcommands
    script = (
        "import sys\n"
        "import bmvseg.cli.main as m\n"
        "build = m.build_parser\n"
        "def announced():\n"
        "    print('ready', flush=True)\n"
        "    return build()\n"
        "m.build_parser = announced\n"
        "sys.exit(m.main())\n"
    )
    interrupted = 0
    for delay in (0.0, 0.3):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, "segment", str(tmp_path / "x.mp4"), "-o",
             str(tmp_path / "o")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=HANG_S)
        text = err.decode()
        if proc.returncode == 2 and "no such file" in text:
            continue  # the imports were already done: the run itself ended first
        assert proc.returncode == 130, text
        assert text.strip().endswith("interrupted") and len(text.strip().splitlines()) == 1, text
        interrupted += 1
    assert interrupted, "every run finished before the signal: the imports were not hit"


# -- 15: a FIFO without a writer -----------------------------------------------------------------


def test_fifo_is_refused_without_blocking(tmp_path, capsys):
    fifo = tmp_path / "live.mp4"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    with pytest.raises(VideoError, match="FIFO") as exc:
        VideoReader(fifo)
    assert time.perf_counter() - t0 < 5 and "live.mp4" in str(exc.value)
    assert main(["segment", str(fifo), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FIFO" in err


# -- 16: source arguments of the wrong kind ------------------------------------------------------


def test_wrong_kinds_of_source_are_one_line_errors(tmp_path):
    video = tmp_path / "v.mp4"
    encode_video(clip(48, 64, 3), video)
    cases: list[tuple[object, str]] = [
        (os.fsencode(video), "got bytes"),
        (bytearray(b"abc"), "got bytearray"),
        (123, "got int"),
        (None, "got NoneType"),
        (["v.mp4"], "got list"),
        (open(video, encoding="latin-1"), "text-mode"),  # noqa: SIM115
    ]
    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as pipe, open(write_fd, "wb") as writer:
        writer.write(video.read_bytes()[:1000])
        cases.append((pipe, "not seekable"))
        for source, expected in cases:
            with pytest.raises(VideoError, match=expected) as exc:
                VideoReader(source)  # type: ignore[arg-type]
            assert "\n" not in str(exc.value)
    cases[-2][0].close()  # type: ignore[attr-defined]
    with open(video, "rb") as f:  # a real binary file object still works
        assert len(list(VideoReader(f).frames(images=False))) == 3
