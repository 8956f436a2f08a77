"""``--start/--end/--max-frames``: exactly the frames asked, labelled as a whole run labels them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import BmvsegError
from bmvseg.run import RunOptions, segment_to_dir
from bmvseg.run.frame_range import frame_of, resolve
from bmvseg.video.encode import X264_ONE_REF, encode_video

FPS = 10.0
FRAMES = 32


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    encode_video(moving_texture_clip("object", 64, 96, FRAMES, seed=5, speed=1.5)[0], path,
                 fps=FPS, options=X264_ONE_REF)  # fmt: skip
    return path


def _labels(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "labels").iterdir())}


@pytest.mark.parametrize(
    ("text", "fps", "frame"),
    [("0", 25, 0), ("90", 25, 90), ("0:01", 25, 25), ("1:30", 10, 900), ("90.5", 10, 905),
     ("90s", 2, 180), ("1:02:03.5", 2, 7447), ("0.04", 25, 1), ("0:00.999", 30, 30)],
)  # fmt: skip
def test_positions_are_frame_numbers_or_times(text, fps, frame):
    assert frame_of(text, fps) == frame


@pytest.mark.parametrize(
    ("start", "end", "max_frames", "count", "why"),
    [("5", "5", None, 100, "empty"), ("1:x", None, None, 100, "bad start"),
     (None, None, 0, 100, "max frames"), ("200", None, None, 100, "has 100 frames"),
     ("0:70", None, None, 100, "under 60")],
)  # fmt: skip
def test_bad_ranges_are_one_line_errors(start, end, max_frames, count, why):
    with pytest.raises(BmvsegError, match=why):
        resolve(start, end, max_frames, 25.0, count)


def test_max_frames_shortens_the_range():
    assert resolve("10", "50", 5, 25.0) == (10, 15)
    assert resolve("10", "12", 5, 25.0) == (10, 12)
    assert resolve(None, None, None, 25.0) == (0, None)


@pytest.mark.parametrize(
    ("scheme", "interval", "keyframes", "start", "end", "max_frames"),
    [
        ("inter-bmv", 5, "fixed", 7, 23, None),  # starts and ends inside intervals
        ("inter-bmv", 4, "fixed", "0:01", None, 9),  # a time; 0:01 at 10 fps is frame 10
        ("prop-bmv", 5, "fixed", 12, "2.05", None),  # end as a time: frames before 21
        ("prop-bmv", 3, "adaptive", 8, 30, None),
        ("per-frame", 1, "fixed", 29, None, None),  # to the end of the video
    ],
)  # fmt: skip
def test_a_range_gives_exactly_its_frames_with_a_whole_runs_labels(
    tmp_path, clip, weights, scheme, interval, keyframes, start, end, max_frames
):
    opts = RunOptions(weights=str(weights), scheme=scheme, interval=interval, keyframes=keyframes)
    whole = segment_to_dir(clip, tmp_path / "whole", opts, overlay=False)
    assert whole["frames"] == FRAMES
    part = segment_to_dir(clip, tmp_path / "part", opts, start=start, end=end,
                          max_frames=max_frames)  # fmt: skip
    first, stop = resolve(start, end, max_frames, FPS)
    stop = FRAMES if stop is None else stop
    labels = _labels(tmp_path / "part")
    assert list(labels) == [f"{i:06d}.png" for i in range(first, stop)]
    reference = _labels(tmp_path / "whole")
    assert all(labels[name] == reference[name] for name in labels)
    assert (part["start"], part["end"], part["frames"]) == (first, resolve(
        start, end, max_frames, FPS)[1], stop - first)  # fmt: skip
    assert all(first <= k["index"] < stop for k in part["keyframes"])


def test_the_cli_range_is_recorded_and_resumable(tmp_path, clip, weights, capsys):
    out = tmp_path / "out"
    argv = ["segment", str(clip), "-o", str(out), "--weights", str(weights), "-k", "5",
            "--start", "0:01", "--end", "0:02.5", "--no-overlay", "-q"]  # fmt: skip
    assert main(argv) == 0
    first = _labels(out)
    assert list(first) == [f"{i:06d}.png" for i in range(10, 25)]  # 1 s to 2.5 s at 10 fps
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["start"], summary["end"], summary["frames"]) == (10, 25, 15)
    # A killed run: the last labels gone; --resume finishes it with the same bytes.
    for name in list(first)[-7:]:
        (out / "labels" / name).unlink()
    (out / "summary.json").unlink()
    assert main([*argv, "--resume"]) == 0
    assert _labels(out) == first
    assert json.loads((out / "summary.json").read_text())["resumed_from"] == 15
    # Another range is another run: refused on resume, not mixed in.
    capsys.readouterr()
    assert main([*argv[:-4], "--end", "0:03", "--no-overlay", "--resume"]) == 2
    assert "error" in capsys.readouterr().err


def test_a_range_is_refused_for_a_job(tmp_path, clip, weights, capsys):
    argv = ["segment", str(clip), str(clip), "-o", str(tmp_path / "o"), "--weights",
            str(weights), "--max-frames", "3"]  # fmt: skip
    assert main(argv) == 2
    assert "one video" in capsys.readouterr().err
