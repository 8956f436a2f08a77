"""The motion policy is a pure function of a stream's facts: tested without any video."""

from __future__ import annotations

import pytest

from bmvseg.video.motion_source import choose_motion_source

H264 = {"codec": "h264", "refs": 1, "max_num_reorder_frames": 0, "has_b_frames": False,
        "reordered_packets": False, "intra_only": False, "interlaced": False}  # fmt: skip


@pytest.mark.parametrize(
    ("facts", "source", "why"),
    [
        ({}, "native", "1 reference frame"),
        ({"refs": 3}, "reencode", "3 reference frames"),
        ({"max_num_reorder_frames": 2}, "reencode", "B-frames"),
        ({"reordered_packets": True}, "reencode", "B-frames"),
        ({"max_num_reorder_frames": None, "has_b_frames": True}, "reencode", "B-frames"),
        ({"refs": None}, "reencode", "unknown"),
        ({"interlaced": True}, "reencode", "interlaced"),
        ({"intra_only": True}, "reencode", "intra-only"),
        ({"codec": "mpeg4", "refs": None}, "native", "without B-frames"),
        ({"codec": "mpeg4", "has_b_frames": True}, "reencode", "B-frames"),
        ({"codec": "mpeg2video", "reordered_packets": True}, "reencode", "B-frames"),
        ({"codec": "hevc"}, "reencode", "no motion vectors"),
        ({"codec": "mjpeg"}, "reencode", "no motion vectors"),
    ],
)
def test_auto_uses_stream_vectors_only_where_they_are_t_to_t_minus_1(facts, source, why):
    got, reason = choose_motion_source("auto", {**H264, **facts})
    assert got == source and why in reason


def test_explicit_policies():
    assert choose_motion_source("reencode", H264)[0] == "reencode"
    assert choose_motion_source("native", {**H264, "refs": 4})[0] == "native"
    with pytest.raises(ValueError, match="no motion vectors for hevc"):
        choose_motion_source("native", {**H264, "codec": "hevc"})
