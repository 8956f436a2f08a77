"""A corpus of awkward inputs, each generated here, each with one defined outcome.

Every input ends either in a correct result (possibly by a documented fallback announced in one
``bmvseg: notice:`` line) or in exactly one ``bmvseg segment: error:`` line naming the problem
with a non-zero exit -- never a traceback, a hang or unbounded memory.  The table of outcomes is
``docs/inputs.md``; keep the two in step.

Runs are in-process (``bmvseg.cli.main.main``) with an alarm as the hang guard; the two checks
that need a process of their own (memory high-water mark, the console script's stderr) use
subprocesses with a timeout.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from conftest import hang_guard

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.video.h264 import _HIGH_PROFILES, _rbsp, parse_sps
from bmvseg.video.reader import VideoReader

H, W, N = 96, 128, 10
HANG_S = 60  # far above any case here (< 2 s each); a hang fails instead of blocking CI
X264_PARAMS = {"x264-params": "ref=1:bframes=0:keyint=100000:scenecut=0"}


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    with hang_guard(HANG_S, "the pipeline"):
        yield


def clip(h: int = H, w: int = W, n: int = N, seed: int = 0) -> list[np.ndarray]:
    return moving_texture_clip("object", h, w, n, seed=seed, speed=1.5)[0]


def write(
    path: Path,
    frames: list[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    fmt: str | None = None,
    container_options: dict[str, str] | None = None,
    pts_ms: list[int] | None = None,
    rotation: int = 0,
) -> Path:
    """Encode with PyAV directly: the container and timestamp knobs encode_video hides."""
    out = av.open(str(path), "w", format=fmt, options=container_options or {})
    stream = out.add_stream(codec, rate=15)
    stream.height, stream.width = frames[0].shape[:2]
    stream.pix_fmt = pix_fmt
    if codec == "libx264":
        stream.options = dict(X264_PARAMS)
    elif codec == "libx265":
        stream.options = {"x265-params": "log-level=none"}
    if pts_ms is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    if rotation:
        stream.set_display_rotation(rotation)
    for i, rgb in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if pts_ms is not None:
            vf.pts, vf.time_base = pts_ms[i], Fraction(1, 1000)
        for packet in stream.encode(vf):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    return path


def mp4_boxes(data: bytes) -> dict[bytes, tuple[int, int]]:
    """Top-level MP4 boxes: type -> (offset, size)."""
    boxes, i = {}, 0
    while i + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        boxes.setdefault(kind, (i, size))
        i += max(size, 8)
    return boxes


def _ue(value: int) -> str:
    value += 1
    return "0" * (value.bit_length() - 1) + format(value, "b")


def patch_sps_size(nal: bytes, width_mbs: int, height_mbs: int) -> bytes:
    """Rewrite an SPS's picture size in macroblocks (as x264 writes it: poc type 0 or 2, no
    scaling matrices), keeping every other field."""
    bits = "".join(format(b, "08b") for b in _rbsp(nal[1:]))
    pos = 0

    def u(n: int) -> int:
        nonlocal pos
        pos += n
        return int(bits[pos - n : pos], 2)

    def ue() -> int:
        nonlocal pos
        zeros = bits.index("1", pos) - pos
        pos += 2 * zeros + 1
        return int(bits[pos - zeros - 1 : pos], 2) - 1

    profile = u(8)
    u(16)
    ue()
    if profile in _HIGH_PROFILES:
        if ue() == 3:
            u(1)
        ue(), ue(), u(1)
        assert u(1) == 0, "scaling matrices not handled"
    ue()
    poc_type = ue()
    assert poc_type in (0, 2), "poc type 1 not handled"
    if poc_type == 0:
        ue()
    ue(), u(1)
    start = pos
    ue(), ue()
    new = bits[:start] + _ue(width_mbs - 1) + _ue(height_mbs - 1) + bits[pos:]
    new = new.rstrip("0")  # keep the stop bit, re-align
    new += "0" * (-len(new) % 8)
    out, zeros = bytearray(nal[:1]), 0
    for byte in (int(new[i : i + 8], 2) for i in range(0, len(new), 8)):
        if zeros >= 2 and byte <= 3:  # emulation prevention
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def annexb_with_size(tmp: Path, name: str, width_mbs: int, height_mbs: int) -> Path:
    """A raw H.264 stream whose SPS claims ``width_mbs`` x ``height_mbs`` macroblocks."""
    data = write(tmp / "plain.h264", clip(), fmt="h264").read_bytes()
    i = data.index(b"\x00\x00\x01\x67") + 3
    j = data.index(b"\x00\x00\x01", i)
    j -= data[j - 1] == 0  # a 4-byte start code
    patched = patch_sps_size(data[i:j], width_mbs, height_mbs)
    path = tmp / name
    path.write_bytes(data[:i] + patched + data[j:])
    return path


def test_sps_patcher_changes_only_the_size(tmp_path):
    """The absurd-size inputs below are only meaningful if the patcher is right."""
    data = write(tmp_path / "a.h264", clip(), fmt="h264").read_bytes()
    i = data.index(b"\x00\x00\x01\x67") + 3
    j = data.index(b"\x00\x00\x01", i)
    j -= data[j - 1] == 0
    sps = data[i:j]
    assert patch_sps_size(sps, W // 16, H // 16) == sps
    assert parse_sps(patch_sps_size(sps, 6250, 6250)) == parse_sps(sps)
    with VideoReader(annexb_with_size(tmp_path, "same.h264", W // 16, H // 16)) as r:
        assert (r.width, r.height) == (W, H)


# -- the corpus ----------------------------------------------------------------------------------
# Each builder makes the input in ``tmp`` and returns its path.


def _faststart_cut(tmp: Path, keep: float) -> Path:
    """moov before mdat, then cut inside mdat: the index survives, the media data does not."""
    data = write(tmp / "full.mp4", clip(n=20), container_options={"movflags": "faststart"})
    raw = data.read_bytes()
    at, size = mp4_boxes(raw)[b"mdat"]
    path = tmp / f"cut{keep}.mp4"
    path.write_bytes(raw[: at + 8 + int((size - 8) * keep)])
    return path


def _zero_moov(tmp: Path, movflags: str | None) -> Path:
    opts = {"movflags": movflags} if movflags else None
    raw = bytearray(write(tmp / "full.mp4", clip(), container_options=opts).read_bytes())
    at, size = mp4_boxes(bytes(raw))[b"moov"]
    raw[at + 8 : at + size] = bytes(size - 8)
    path = tmp / "nomoov.mp4"
    path.write_bytes(bytes(raw))
    return path


def _audio(tmp: Path, codec: str) -> Path:
    path = tmp / f"sound.{'m4a' if codec == 'aac' else 'mp2'}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=16000)
        fmt, dtype = ("fltp", np.float32) if codec == "aac" else ("s16", np.int16)
        for k in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1152), dtype), fmt, "mono")
            frame.sample_rate, frame.pts = 16000, k * 1152
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _image(tmp: Path, ext: str) -> Path:
    path = tmp / f"still.{ext}"
    cv2.imwrite(str(path), clip()[0][..., ::-1])
    return path


def _size_change(tmp: Path) -> Path:
    """Two H.264 streams of different sizes back to back in one MPEG-TS (a spliced capture)."""
    a = write(tmp / "a.ts", clip(n=8), fmt="mpegts").read_bytes()
    b = write(tmp / "b.ts", clip(120, 160, 8, seed=1), fmt="mpegts").read_bytes()
    path = tmp / "spliced.ts"
    path.write_bytes(a + b)
    return path


ERRORS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "empty": (lambda t: _touch(t / "empty.mp4", b""), "not a readable video"),
    "random bytes": (
        lambda t: _touch(t / "noise.mp4", np.random.default_rng(0).bytes(50_000)),
        "not a readable video",
    ),
    "text named .mp4": (
        lambda t: _touch(t / "notes.mp4", b"this is a shopping list\n" * 100),
        "not a readable video",
    ),
    "mp4 cut, index at the end": (
        lambda t: _touch(t / "cut.mp4", write(t / "f.mp4", clip()).read_bytes()[:4000]),
        "truncated",
    ),
    "mp4 cut before the first frame": (lambda t: _faststart_cut(t, 0.02), "cannot decode"),
    "moov zeroed": (lambda t: _zero_moov(t, None), "index"),
    "fragmented, moov zeroed": (
        lambda t: _zero_moov(t, "frag_keyframe+empty_moov"),
        "not a readable video",
    ),
    "audio only (aac)": (lambda t: _audio(t, "aac"), "no video stream"),
    "audio only (mp2)": (lambda t: _audio(t, "mp2"), "no video stream"),
    "resolution changes midway": (_size_change, "frame size changes from 128x96 to 160x120"),
    "SPS claims 100000x100000": (
        lambda t: annexb_with_size(t, "huge.h264", 6250, 6250),
        "no valid frame size",
    ),
    "SPS claims 16000x16000": (
        lambda t: annexb_with_size(t, "big.h264", 1000, 1000),
        "16000x16000",
    ),
}


def _touch(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def segment(video: Path, out: Path, *extra: str) -> int:
    return main(["segment", str(video), "-o", str(out), "--weights", "none", *extra])


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_is_one_line_error(case, tmp_path, capsys):
    build, expected = ERRORS[case]
    video = build(tmp_path)
    out = tmp_path / "out"
    assert segment(video, out, "--no-overlay") != 0
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line.startswith("bmvseg segment: error:") and video.name in line, line
    assert expected in line, line
    # never half-true: no summary claims anything, and nothing half-written lies around
    assert not (out / "summary.json").exists()
    assert not list(out.rglob(".partial-*")) if out.exists() else True


def check_complete(out: Path, frames: int, size: tuple[int, int]) -> dict:
    """The run finished: one label map of the right size per decoded frame, summary last."""
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["frames"] == frames
    labels = sorted((out / "labels").glob("*.png"))
    assert [p.name for p in labels] == [f"{i:06d}.png" for i in range(frames)]
    for p in labels[:: max(1, frames // 3)]:
        lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        assert lab.shape == size and lab.dtype == np.uint8 and lab.max() < 11
    assert not list(out.rglob(".partial-*"))
    return summary


FALLBACKS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "MJPEG (intra-only)": (
        lambda t: write(t / "cam.avi", clip(), codec="mjpeg", pix_fmt="yuvj420p"),
        "mjpeg streams carry no motion vectors",
    ),
    "HEVC": (lambda t: write(t / "h.mp4", clip(), codec="libx265"), "hevc streams carry no"),
    "VP9": (lambda t: write(t / "v.webm", clip(), codec="libvpx-vp9"), "vp9 streams carry no"),
}


@pytest.mark.parametrize("case", list(FALLBACKS))
def test_codec_without_vectors_falls_back_with_one_notice(case, tmp_path, capsys):
    build, reason = FALLBACKS[case]
    video = build(tmp_path)
    out = tmp_path / "out"
    assert segment(video, out, "--no-overlay") == 0
    captured = capsys.readouterr()
    notices = [ln for ln in captured.out.splitlines() if ln.startswith("bmvseg: notice:")]
    assert len(notices) == 1 and reason in notices[0] and "re-encoding" in notices[0]
    assert not captured.err.strip()
    summary = check_complete(out, N, (H, W))
    assert summary["motion_source"] == "reencode" and reason in summary["motion_reason"]


@pytest.mark.parametrize(
    "size, codec, pix_fmt, ext",
    [
        ((122, 158), "libx264", "yuv420p", "mp4"),  # 478x362 scaled: not a multiple of 16
        ((95, 127), "mpeg4", "yuv420p", "avi"),  # odd, MPEG-4 part 2 allows it
        ((95, 127), "libx264", "yuv444p", "mp4"),  # odd, no chroma subsampling
        ((H, W), "libx264", "yuv420p10le", "mp4"),  # 10-bit High 10
    ],
)
def test_sizes_and_formats_keep_native_vectors(size, codec, pix_fmt, ext, tmp_path, capsys):
    video = write(tmp_path / f"v.{ext}", clip(*size), codec=codec, pix_fmt=pix_fmt)
    with VideoReader(video) as r:
        assert r.codec_info["pix_fmt"] == pix_fmt and r.motion_source == "native"
        assert r.grid_shape == (-(-size[0] // 16), -(-size[1] // 16))
        first = next(r.frames())
        assert first.image.shape == (*size, 3) and first.image.dtype == np.uint8
    out = tmp_path / "out"
    assert segment(video, out) == 0
    assert not capsys.readouterr().err.strip()
    check_complete(out, N, size)
    with av.open(str(out / "overlay.mp4")) as ov:
        s = ov.streams.video[0]
        # yuv420p needs even sizes: odd ones are padded by one edge row/column
        assert (s.height, s.width) == tuple(v + v % 2 for v in size) and s.frames == N


def test_truncated_mp4_segments_what_decodes_and_says_so(tmp_path, capsys):
    video = _faststart_cut(tmp_path, 0.5)
    with VideoReader(video) as r:
        decodable = sum(1 for _ in r.frames(images=False))
        assert r.truncated
    assert 0 < decodable < 20
    out = tmp_path / "out"
    assert segment(video, out) == 0
    captured = capsys.readouterr()
    assert "ended early" in captured.out and not captured.err.strip()
    summary = check_complete(out, decodable, (H, W))
    assert summary["stream_ended_early"] is True


def test_fragmented_mp4_cut_midway_segments_what_decodes(tmp_path, capsys):
    raw = write(
        tmp_path / "f.mp4", clip(n=20), container_options={"movflags": "frag_keyframe"}
    ).read_bytes()
    video = tmp_path / "cut.mp4"
    video.write_bytes(raw[: len(raw) * 2 // 3])
    assert segment(video, tmp_path / "out", "--no-overlay") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["stream_ended_early"] is True and 0 < summary["frames"] < 20
    check_complete(tmp_path / "out", summary["frames"], (H, W))


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_still_image_is_a_one_frame_video(ext, tmp_path, capsys):
    out = tmp_path / "out"
    assert segment(_image(tmp_path, ext), out) == 0
    assert not capsys.readouterr().err.strip()
    summary = check_complete(out, 1, (H, W))
    assert summary["stream_ended_early"] is False


def test_rotation_flag_is_reported_and_frames_stay_as_stored(tmp_path, capsys):
    video = write(tmp_path / "phone.mp4", clip(), rotation=90)
    out = tmp_path / "out"
    assert segment(video, out, "--no-overlay") == 0
    captured = capsys.readouterr()
    notices = [ln for ln in captured.out.splitlines() if ln.startswith("bmvseg: notice:")]
    assert len(notices) == 1 and "rotat" in notices[0] and "90" in notices[0], captured.out
    summary = check_complete(out, N, (H, W))  # stored orientation: H x W, not W x H
    assert summary["rotation"] == 90


def test_variable_frame_rate_times_follow_pts(tmp_path, capsys):
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 700, 740]
    video = write(tmp_path / "vfr.mkv", clip(), fmt="matroska", pts_ms=pts)
    npz = tmp_path / "m.npz"
    assert main(["motion", str(video), "-o", str(npz)]) == 0
    np.testing.assert_allclose(np.load(npz)["time"], np.array(pts) / 1000, atol=1e-6)
    assert segment(video, tmp_path / "out", "--no-overlay") == 0
    summary = check_complete(tmp_path / "out", N, (H, W))
    assert summary["stream_ended_early"] is False  # uneven gaps are not missing frames


def test_container_size_field_is_not_trusted(tmp_path, capsys):
    """An MP4 whose tkhd/avc1 claim 65535x65535: FFmpeg takes the size from the SPS."""
    raw = bytearray(write(tmp_path / "v.mp4", clip()).read_bytes())
    i = raw.find(b"avc1")
    struct.pack_into(">HH", raw, i + 4 + 24, 65535, 65535)  # sample entry width, height
    j = raw.find(b"tkhd")
    off = j + 4 + 4 + (32 if raw[j + 4] == 1 else 20) + 8 + 8 + 36
    struct.pack_into(">II", raw, off, 65535 << 16, 65535 << 16)
    video = tmp_path / "liar.mp4"
    video.write_bytes(bytes(raw))
    assert segment(video, tmp_path / "out", "--no-overlay") == 0
    summary = check_complete(tmp_path / "out", N, (H, W))
    assert (summary["width"], summary["height"]) == (W, H)


# -- what needs a process of its own ------------------------------------------------------------

_RSS_PROBE = """
import resource, sys
from bmvseg.cli.main import main
rc = main(sys.argv[1:])
print("MAXRSS_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
sys.exit(rc)
"""


def _console(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_absurd_sizes_fail_fast_without_allocating(tmp_path):
    """One process for both, measured: refusing must not cost the frame buffers it claims.

    A baseline run on a good clip in the same way gives the process's normal high-water mark
    (torch, the model); the refusals must stay within 100 MB of it.  (Without the pixel limit
    FFmpeg's stream probing alone allocated ~1.2 GB for the 16000x16000 claim.)
    """
    good = write(tmp_path / "good.mp4", clip())
    base = _console("segment", str(good), "-o", str(tmp_path / "g"), "--weights", "none")
    assert base.returncode == 0, base.stderr
    base_mb = float(base.stdout.split("MAXRSS_MB")[1])
    for name, mbs in (("huge.h264", 6250), ("big.h264", 1000)):
        video = annexb_with_size(tmp_path, name, mbs, mbs)
        res = _console("segment", str(video), "-o", str(tmp_path / name), "--weights", "none")
        assert res.returncode == 2
        line = _one_line(res.stderr)
        assert name in line and ("frame size" in line or "16000x16000" in line), line
        assert float(res.stdout.split("MAXRSS_MB")[1]) < base_mb + 100, res.stdout
