"""A distributed job's inputs and chunks: which videos, which output names, which frame ranges."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bmvseg.distributed.chunks import Chunk, plan_chunks
from bmvseg.distributed.inputs import assign_names, expand_inputs
from bmvseg.errors import BmvsegError
from bmvseg.schemes.keyframes import AdaptiveSchedule, FixedSchedule


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_files_folders_and_patterns_in_order_each_once(tmp_path):
    a = _touch(tmp_path / "one" / "a.mp4")
    b = _touch(tmp_path / "one" / "deep" / "b.MKV")
    _touch(tmp_path / "one" / "notes.txt")
    _touch(tmp_path / "one" / ".hidden.mp4")
    _touch(tmp_path / "one" / ".cache" / "c.mp4")
    d = _touch(tmp_path / "two" / "d.avi")
    e = _touch(tmp_path / "two" / "e.avi")
    got = expand_inputs([d, tmp_path / "one", str(tmp_path / "two" / "*.avi"), a])
    assert got == [d, a, b, e]


def test_output_folder_inside_the_input_folder_is_left_out(tmp_path):
    a = _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "out" / "a" / "overlay.mp4")
    assert expand_inputs([tmp_path], exclude=tmp_path / "out") == [a]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("missing.mp4", "no such file or folder"),
        ("*.nothing", "pattern matches no files"),
        ("empty", "folder holds no video files"),
    ],
)
def test_an_input_that_names_nothing_is_one_error(tmp_path, spec, message):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BmvsegError, match=message) as info:
        expand_inputs([str(tmp_path / spec)])
    assert str(tmp_path / spec) in str(info.value)


def test_clashing_names_get_suffixes_in_input_order():
    paths = [Path("x/a.mp4"), Path("y/a.mkv"), Path("z/A.mp4"), Path("a-2.mp4"), Path("b.mp4")]
    named = assign_names(paths)
    assert [v.name for v in named] == ["a", "a-2", "A-3", "a-2-2", "b"]
    assert [v.stem for v in named] == ["a", "a", "A", "a-2", "b"]
    assert len({v.name.casefold() for v in named}) == len(paths)


def test_a_bad_chunk_length_is_one_error():
    with pytest.raises(BmvsegError, match="chunk length"):
        plan_chunks(100, 0)


@given(
    frames=st.one_of(st.none(), st.integers(1, 3000)),
    interval=st.integers(1, 30),
    phase=st.integers(0, 29),
    size=st.integers(1, 700),
)
def test_chunks_tile_the_video_from_stable_frames(frames, interval, phase, size):
    stable = FixedSchedule(interval, phase % interval).stable
    chunks = plan_chunks(frames, size, stable)
    assert chunks[0].start == 0 and chunks[-1].end is None
    for c, nxt in pairwise(chunks):
        assert c.end == nxt.start  # no gap, no overlap
        assert stable(nxt.start)
        assert abs((c.end - c.start) - size) < interval  # the nearest stable frame
    if frames is not None and len(chunks) > 1:
        assert frames - chunks[-1].start >= size / 2  # no tiny tail chunk
    assert len({c.key for c in chunks}) == len(chunks)


def test_adaptive_chunks_start_at_anchors():
    stable = AdaptiveSchedule(5).stable
    starts = [c.start for c in plan_chunks(1000, 120, stable)]
    assert all(stable(s) for s in starts) and len(starts) > 4


def test_chunk_keys_are_stable_names():
    assert Chunk(300, 600).key == "000300-000600"
    assert Chunk(600, None).key == "000600-end"
