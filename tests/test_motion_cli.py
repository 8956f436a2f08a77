"""``bmvseg motion``: the npz schema, the drawing, and bad input ending cleanly."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.video.encode import X264_ONE_REF, encode_video

N = 8


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    frames, _ = moving_texture_clip("translate", 72, 104, N, seed=4, speed=2.0)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    encode_video(frames, path, fps=10, options={})  # B-frames: exercises the fallback notice
    return path


def test_writes_the_npz_schema(clip, tmp_path, capsys):
    out = tmp_path / "motion.npz"
    assert main(["motion", str(clip), "-o", str(out), "--block", "8"]) == 0
    captured = capsys.readouterr()
    assert "notice" in captured.err and "re-encoding" in captured.err
    assert str(out) in captured.out
    with np.load(out, allow_pickle=False) as d:
        assert d["mv"].shape == (N, 9, 13, 2) and d["mv"].dtype == np.float32
        assert d["valid"].shape == (N, 9, 13) and d["valid"].dtype == bool
        assert d["pict_type"].shape == (N,) and set(d["pict_type"]) <= {"I", "P", "B"}
        assert d["time"].dtype == np.float64
        np.testing.assert_allclose(np.diff(d["time"]), 0.1, atol=1e-6)
        assert str(d["motion_source"]) == "reencode" and "B-frames" in str(d["motion_reason"])
        assert not d["valid"][0].any() and d["valid"][1:].mean() > 0.8
        # the clip moves 2 px/frame right and 1.2 px/frame down: pull offset (-2, -1.2)
        np.testing.assert_allclose(
            np.median(d["mv"][1:][d["valid"][1:]], axis=0), (-2.0, -1.2), atol=0.3
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["motion.npz"]


def test_demo_and_draw(tmp_path, capsys):
    out, drawn = tmp_path / "demo.npz", tmp_path / "demo.mp4"
    assert main(["motion", "--demo", "-o", str(out), "--draw", str(drawn)]) == 0
    with np.load(out) as d:
        t = len(d["pict_type"])
        assert str(d["motion_source"]) == "native" and d["valid"][1:].any()
    with av.open(str(drawn)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == t and frames[0].shape == (240, 320, 3)
    # arrows (pure yellow-ish pixels) are drawn on frames with motion, not on frame 0
    yellow = [((f[..., 0] > 200) & (f[..., 1] > 200) & (f[..., 2] < 80)).sum() for f in frames]
    assert yellow[5] > yellow[0]


def _no_traceback_one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("case", ["missing", "text", "truncated", "no_output"])
def test_bad_input_ends_with_one_line_and_no_output(case, clip, tmp_path, capsys):
    video = tmp_path / "in.mp4"
    if case == "text":
        video.write_text("not a video at all\n" * 40)
    elif case == "truncated":
        video = tmp_path / "in.mkv"
        frames, _ = moving_texture_clip("zoom", 72, 104, N, seed=1)
        encode_video(frames, video, options=X264_ONE_REF)
        video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    elif case == "no_output":
        video = clip
    out, drawn = tmp_path / "out.npz", tmp_path / "out.mp4"
    argv = ["motion", str(video)]
    if case != "no_output":
        argv += ["-o", str(out), "--draw", str(drawn)]
    before = set(tmp_path.iterdir())
    assert main(argv) != 0
    line = _no_traceback_one_line(capsys.readouterr().err)
    assert line.startswith("bmvseg motion: error:")
    if case != "no_output":
        assert video.name in line
    assert set(tmp_path.iterdir()) == before  # no output, no temporary file left


def test_console_script_exit_status(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bmvseg.cli.main",
            "motion",
            str(tmp_path / "x.mp4"),
            "-o",
            str(tmp_path / "o.npz"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert _no_traceback_one_line(result.stderr).endswith("no such file")


def _tree(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry below ``folder``: its file type and, for regular files, its bytes."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(folder))] = (
            stat.S_IFMT(st.st_mode),
            p.read_bytes() if stat.S_ISREG(st.st_mode) else None,
        )
    return out


@pytest.mark.parametrize(
    "case",
    ["output_is_input", "hard_link_to_input", "draw_is_output", "draw_is_output_spelled_otherwise",
     "fifo", "symlink_to_fifo", "directory", "draw_directory", "dangling_symlink"],
)  # fmt: skip
def test_outputs_that_are_inputs_each_other_or_special_are_refused(case, clip, tmp_path, capsys):
    video = tmp_path / "in.mp4"
    video.write_bytes(clip.read_bytes())
    out, drawn = tmp_path / "out.npz", tmp_path / "out.mp4"
    argv = ["motion", str(video), "-o", str(out)]
    if case == "output_is_input":
        argv[3] = str(video)
    elif case == "hard_link_to_input":
        os.link(video, out)
    elif case == "draw_is_output":
        argv += ["--draw", str(out)]
    elif case == "draw_is_output_spelled_otherwise":
        (tmp_path / "sub").mkdir()
        argv += ["--draw", str(tmp_path / "sub" / ".." / "out.npz")]
    elif case == "fifo":
        os.mkfifo(out)
    elif case == "symlink_to_fifo":
        os.mkfifo(tmp_path / "fifo")
        out.symlink_to(tmp_path / "fifo")
    elif case == "directory":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif case == "draw_directory":
        drawn.mkdir()
        argv += ["--draw", str(drawn)]
    elif case == "dangling_symlink":
        out.symlink_to(tmp_path / "nowhere")
    before = _tree(tmp_path)
    assert main(argv) != 0
    line = _no_traceback_one_line(capsys.readouterr().err)
    assert line.startswith("bmvseg motion: error:"), line
    assert str(tmp_path) in line, line
    assert _tree(tmp_path) == before  # nothing replaced, removed or left behind


@pytest.mark.parametrize("name", ["arrows.xyz", "arrows.wav", "arrows.png", "arrows.npz"])
def test_draw_to_a_format_that_cannot_hold_h264_is_refused_first(name, clip, tmp_path, capsys):
    argv = ["motion", str(clip), "-o", str(tmp_path / "m.npz"), "--draw", str(tmp_path / name)]
    assert main(argv) != 0
    line = _no_traceback_one_line(capsys.readouterr().err)
    assert name in line and "H.264" in line, line
    assert list(tmp_path.iterdir()) == []  # refused before the .npz was written


def test_draw_without_extension_is_mp4(clip, tmp_path):
    drawn = tmp_path / "arrows"
    assert main(["motion", str(clip), "--draw", str(drawn)]) == 0
    with av.open(str(drawn)) as c:
        assert c.format.name.startswith("mov") and c.streams.video[0].frames == N
    assert [p.name for p in tmp_path.iterdir()] == ["arrows"]


@pytest.mark.parametrize("scale", ["nan", "inf", "-inf", "1e300", "-1e300"])
def test_arrow_scale_must_be_finite_and_bounded(scale, clip, tmp_path, capsys):
    argv = ["motion", str(clip), "--draw", str(tmp_path / "a.mp4"), f"--arrow-scale={scale}"]
    assert main(argv) != 0
    assert "--arrow-scale" in _no_traceback_one_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_regular_output_is_replaced_whole(clip, tmp_path):
    out = tmp_path / "m.npz"
    out.write_bytes(b"an older result")
    assert main(["motion", str(clip), "-o", str(out)]) == 0
    with np.load(out) as d:
        assert len(d["pict_type"]) == N
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]
