"""VideoReader's contract: frames, ranges, file objects, and defined behaviour on bad input."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest

import bmvseg.video.probe as probe_module
from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import VideoError
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.reader import Frame, VideoReader, read_motion

H, W, N = 96, 128, 12


@pytest.fixture(scope="module")
def clip_frames():
    return moving_texture_clip("object", H, W, N, seed=2, speed=1.5)[0]


def _write(tmp_path: Path, frames, name="clip.mp4", **kw) -> Path:
    path = tmp_path / name
    encode_video(frames, path, **kw)
    return path


def test_frames_carry_index_time_type_image_and_motion(tmp_path, clip_frames):
    path = _write(tmp_path, clip_frames, fps=15, options=X264_ONE_REF)
    with VideoReader(path) as r:
        assert (r.width, r.height, r.fps, r.frame_count) == (W, H, 15.0, N)
        assert r.motion_source == "native" and r.motion_reason
        assert r.codec_info["codec"] == "h264" and r.codec_info["refs"] == 1
        frames = list(r.frames())
    assert [f.index for f in frames] == list(range(N))
    assert all(isinstance(f, Frame) for f in frames)
    np.testing.assert_allclose([f.time for f in frames], np.arange(N) / 15.0, atol=1e-6)
    assert frames[0].pict_type == "I" and {f.pict_type for f in frames[1:]} == {"P"}
    assert frames[0].image.shape == (H, W, 3) and frames[0].image.dtype == np.uint8
    # each decoded image is the encoded one up to compression error: closest to its source
    for f in frames:
        errs = [np.abs(f.image.astype(int) - src).mean() for src in clip_frames]
        assert int(np.argmin(errs)) == f.index
    assert frames[0].motion.grid_shape == (6, 8) and not frames[0].motion.valid.any()
    assert not r.truncated


def test_range_decodes_what_it_needs_and_matches_the_full_run(tmp_path, clip_frames):
    path = _write(tmp_path, clip_frames, options=X264_ONE_REF)
    r = VideoReader(path)
    full = list(r.frames(images=False))
    part = list(r.frames(images=False, start=4, end=7))  # a reader can iterate again
    assert [f.index for f in part] == [4, 5, 6] and part[0].image is None
    for f in part:
        np.testing.assert_array_equal(f.motion.mv, full[f.index].motion.mv)
        np.testing.assert_array_equal(f.motion.valid, full[f.index].motion.valid)
    assert part[0].motion.valid.any()  # motion of the first frame of a range is not dropped


def test_range_under_reencoding_still_gives_motion(tmp_path, clip_frames):
    path = _write(tmp_path, clip_frames, options={})  # B-frames: re-encoded
    r = VideoReader(path)
    assert r.motion_source == "reencode"
    full = list(r.frames(images=False))
    part = list(r.frames(images=False, start=5, end=8))
    assert [f.index for f in part] == [5, 6, 7]
    for f in part:
        both = f.motion.valid & full[f.index].motion.valid
        assert both.mean() > 0.9
        assert np.median(np.abs(f.motion.mv - full[f.index].motion.mv)[both]) <= 0.25


def test_file_object_and_read_motion(clip_frames):
    buf = io.BytesIO()
    encode_video(clip_frames, buf, options=X264_ONE_REF)
    buf.seek(0)
    mv, valid, picts, times, info = read_motion(buf, block=8)
    assert mv.shape == (N, 12, 16, 2) and valid.shape == (N, 12, 16) and len(picts) == N
    assert info["motion_source"] == "native" and info["block"] == 8 and not info["truncated"]


def test_b_frame_found_late_switches_to_reencoding(tmp_path, clip_frames, monkeypatch):
    """A stream whose B-frames the open-time probe misses is re-encoded from the first B on."""
    path = _write(tmp_path, clip_frames, "b.m2v", codec="mpeg2video", options={"bf": "2"})
    monkeypatch.setattr(probe_module, "_PROBE_PACKETS", 1)  # probe too short to see them
    r = VideoReader(path)
    assert r.motion_source == "native"
    frames = list(r.frames(images=False))
    first_b = next(f.index for f in frames if f.pict_type == "B")
    assert r.motion_source == "reencode" and f"frame {first_b}" in r.motion_reason
    assert r.notice
    assert all(f.motion.valid.mean() > 0.5 for f in frames[1:])


def test_bad_arguments():
    with pytest.raises(VideoError, match="motion policy"):
        VideoReader("x.mp4", motion="fast")
    with pytest.raises(VideoError, match="block"):
        VideoReader("x.mp4", block=6)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="no such file") as exc:
        VideoReader(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 50])
def test_not_a_video(tmp_path, content):
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoError, match="not a readable video") as exc:
        VideoReader(path)
    assert "fake.mp4" in str(exc.value) and "\n" not in str(exc.value)


def test_directory(tmp_path):
    with pytest.raises(VideoError, match="directory"):
        VideoReader(tmp_path)


def test_no_video_stream(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), "fltp", "mono")
        frame.sample_rate = 16000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    with pytest.raises(VideoError, match="no video stream"):
        VideoReader(path)


def test_truncated_mp4_without_index_cannot_be_opened(tmp_path, clip_frames):
    data = _write(tmp_path, clip_frames, options=X264_ONE_REF).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: lost
    with pytest.raises(VideoError, match="truncated"):
        VideoReader(cut)


@pytest.mark.parametrize("damage", ["cut", "garble"])
def test_truncated_or_garbled_stream_yields_what_decodes_and_says_so(tmp_path, clip_frames, damage):
    data = bytearray(_write(tmp_path, clip_frames, "clip.mkv", options=X264_ONE_REF).read_bytes())
    if damage == "cut":
        data = data[: len(data) * 2 // 3]
    else:  # damage a P-frame's slice data in the second half
        at = len(data) * 2 // 3
        data[at : at + 300] = bytes(b ^ 0x5A for b in data[at : at + 300])
    bad = tmp_path / f"{damage}.mkv"
    bad.write_bytes(bytes(data))
    r = VideoReader(bad)
    frames = list(r.frames(images=False))
    assert len(frames) < N and r.truncated


def test_empty_range_and_early_stop(tmp_path, clip_frames):
    path = _write(tmp_path, clip_frames, options=X264_ONE_REF)
    r = VideoReader(path)
    assert list(r.frames(start=3, end=3)) == []
    assert [f.index for f in r.frames(images=False, end=2)] == [0, 1]
    assert not r.truncated  # stopping early is not truncation
