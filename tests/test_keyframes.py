"""Keyframe placement: the budget, cuts, max interval, spending, and restart (range) stability.

Property tests build frames with hand-made motion fields (no video, milliseconds each); the clip
tests encode real H.264 with a hard cut or a static camera and read it back.
"""

from __future__ import annotations

import io
import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import BmvsegError
from bmvseg.schemes.keyframes import (
    AdaptiveSchedule,
    FixedSchedule,
    Mark,
    is_cut,
    make_schedule,
    signal,
)
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.motion import MotionField
from bmvseg.video.reader import Frame, VideoReader

CELLS = 16  # a 4x4 grid: valid shares in steps of 1/16


def synthetic(index: int, valid_cells: int, disp: float, pict: str = "P") -> Frame:
    """A frame whose motion field has ``valid_cells`` valid cells moving ``disp`` px in x."""
    valid = np.zeros(CELLS, bool)
    valid[:valid_cells] = True
    mv = np.zeros((CELLS, 2), np.float32)
    mv[valid, 0] = disp
    field = MotionField(mv.reshape(4, 4, 2), valid.reshape(4, 4))
    return Frame(index, index / 15, pict, None, field)


def keys(schedule, frames) -> list[int]:
    return [f.index for f, mark in schedule.mark(frames) if mark.keyframe]


def reasons(schedule, frames) -> dict[int, tuple[str, ...]]:
    return {f.index: mark.reasons for f, mark in schedule.mark(frames)}


frame_specs = st.lists(
    st.tuples(
        st.integers(0, CELLS),
        st.sampled_from([0.0, 0.4, 2.0, 6.0, 30.0]),
        st.booleans(),
    ),
    min_size=1,
    max_size=90,
)


@st.composite
def adaptive_cases(draw):
    k = draw(st.integers(1, 6))
    m = draw(st.integers(k, 3 * k))
    anchor = k * draw(st.integers(1, 6))
    spend = draw(st.booleans())
    specs = draw(frame_specs)
    frames = [
        synthetic(i, v if i else 0, d, "I" if (i == 0 or iframe) else "P")
        for i, (v, d, iframe) in enumerate(specs)
    ]
    return AdaptiveSchedule(k, m, anchor=anchor, spend=spend), frames


@settings(max_examples=300, deadline=None)
@given(adaptive_cases())
def test_adaptive_never_exceeds_the_budget_or_the_max_interval(case):
    sch, frames = case
    k, m, t = sch.interval, sch.max_interval, len(frames)
    marked = list(sch.mark(frames))
    assert [f.index for f, _ in marked] == list(range(t))
    assert marked[0][1].reasons == ("start",)
    placed = 0
    for f, mark in marked:  # the running budget holds at every prefix
        placed += mark.keyframe
        assert placed <= math.ceil((f.index + 1) / k) + 1
    if m >= 2 * k - 1:  # ... and with the engine's closing keyframe over the whole video
        assert placed + (not marked[-1][1].keyframe) <= math.ceil(t / k) + 1
    ks = [f.index for f, mark in marked if mark.keyframe]
    assert all(b - a <= m for a, b in pairwise(ks))
    assert set(range(0, t, sch.anchor)) <= set(ks)  # anchors are keyframes
    cuts = {f.index for f in frames[1:] if sch.is_cut(signal(f))}
    for f, mark in marked:  # no optional keyframe just before a cut it could have waited for
        if mark.reasons[:1] in (("iframe",), ("change",), ("spare",)):
            next_anchor = (f.index // sch.anchor + 1) * sch.anchor
            assert not cuts & set(range(f.index + 1, min(f.index + k, next_anchor - 1) + 1))


@settings(max_examples=150, deadline=None)
@given(adaptive_cases())
def test_a_run_restarted_at_a_stable_point_places_the_same_later_keyframes(case):
    sch, frames = case
    whole = keys(sch, frames)
    for start in range(1, len(frames)):
        if sch.stable(start):
            assert start in whole
            assert keys(sch, frames[start:]) == [i for i in whole if i >= start]


@pytest.mark.parametrize("spend", [True, False])
def test_paying_for_cuts_lengthens_the_intervals_before_them_evenly(spend):
    # Steady motion (5 px a frame) with cuts at 43 and 74, k = 10: the budget has no keyframe to
    # spare, so the intervals around the cuts grow a little; none doubles.
    k, t = 10, 101
    frames = [synthetic(i, 2 if i in (43, 74) else (CELLS if i else 0), 5.0) for i in range(t)]
    placed = keys(AdaptiveSchedule(k, spend=spend), frames)
    assert {43, 74} <= set(placed)
    assert len(placed) + (t - 1 not in placed) <= math.ceil(t / k) + 1
    assert max(b - a for a, b in pairwise(placed)) <= 1.5 * k


def test_stream_iframes_are_cuts_on_weaker_evidence_and_otherwise_only_bring_keyframes_forward():
    k = 5
    sch = AdaptiveSchedule(k, spend=False)

    def clip(iframes: dict[int, int], disp: float) -> list[Frame]:
        return [
            synthetic(i, iframes.get(i, CELLS) if i else 0, disp, "I" if i in iframes else "P")
            for i in range(40)
        ]

    # 11 of 16 cells valid: a cut on an I-frame (below 0.8), not on a P-frame (above 0.5)
    assert reasons(sch, clip({13: 11}, 0.0))[13] == ("cut",)
    frames = clip({}, 0.0)
    frames[13] = synthetic(13, 11, 0.0)
    assert reasons(sch, frames)[13] == ()
    # periodic I-frames in a still scene are not keyframes; with some motion (1.6 px a frame:
    # half the change threshold after 5 frames) the one at 17 is
    assert keys(sch, clip({7: CELLS, 17: CELLS, 27: CELLS}, 0.0)) == [0, 10, 20, 30]
    assert reasons(sch, clip({17: CELLS}, 1.6))[17] == ("iframe",)


def test_credit_saved_before_an_anchor_does_not_carry_over():
    # Static, then fast motion from frame 41 on: the credit saved over the static stretch is
    # dropped at the anchor (frame 40), so a run started there places the same keyframes.
    k = 4
    frames = [synthetic(i, CELLS if i else 0, 0.0 if i <= 40 else 40.0) for i in range(70)]
    sch = AdaptiveSchedule(k, spend=False)
    whole = keys(sch, frames)
    assert 40 in whole and keys(sch, frames[40:]) == [i for i in whole if i >= 40]
    assert sum(i > 40 for i in whole) <= math.ceil(29 / k)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 6),
    st.booleans(),
    st.data(),
)
def test_isolated_cuts_get_a_keyframe_on_their_first_frame(k, spend, data):
    # Cuts at least 2k apart, in content that moves steadily: each gets its keyframe unless it is
    # within k frames before an anchor or the end (where the budget may already be spoken for).
    gap = data.draw(st.integers(2 * k, 5 * k))
    t = data.draw(st.integers(1, 160))
    first = data.draw(st.integers(1, gap))
    disp = data.draw(st.sampled_from([0.0, 0.5, 2.0, 4.0, 16.0]))
    cuts = set(range(first, t, gap))
    frames = [synthetic(i, 3 if i in cuts else (CELLS if i else 0), disp) for i in range(t)]
    sch = AdaptiveSchedule(k, spend=spend)
    marked = reasons(sch, frames)
    for c in cuts:
        if (-c) % sch.anchor >= k and t - 1 - c >= k:
            assert "cut" in marked[c], (c, marked)


@settings(max_examples=200, deadline=None)
@given(adaptive_cases(), st.data())
def test_every_keyframe_that_is_a_cut_says_so_whatever_placed_it(case, data):
    # A cut landing on an anchor, a max-interval, a spare, an I-frame or a change keyframe (or
    # on fixed placement's keyframes) is named among its reasons; a cut that is no keyframe is
    # still marked.  The first frame has no frame before it: never a cut.
    sch, frames = case
    fixed = FixedSchedule(sch.interval, data.draw(st.integers(0, sch.interval - 1)))
    for schedule in (sch, fixed):
        for f, mark in schedule.mark(frames):
            cut = f.index > 0 and is_cut(signal(f))
            assert mark.cut == cut
            assert ("cut" in mark.reasons) == (cut and mark.keyframe)
            assert len(set(mark.reasons)) == len(mark.reasons)
            if mark.keyframe and mark.reasons[0] != "cut":
                assert mark.reasons[0] in ("start", "anchor", "max-interval", "iframe", "change",
                                           "spare", "interval")  # fmt: skip


def test_a_cut_on_an_anchor_or_a_max_interval_keyframe_is_a_cut():
    # The case: a cut landing where another rule already puts a keyframe
    k = 5
    frames = [synthetic(i, 1 if i in (10, 50) else (CELLS if i else 0), 0.0) for i in range(60)]
    marked = reasons(AdaptiveSchedule(k, anchor=50, spend=False), frames)
    assert marked[10] == ("max-interval", "cut") and marked[50] == ("anchor", "cut")
    assert reasons(FixedSchedule(k), frames)[10] == ("interval", "cut")
    assert Mark(cut=True).placed("end").reasons == ("end", "cut")
    assert Mark(("cut",), cut=True).placed("end").reasons == ("cut", "end")


def test_the_cut_test_can_be_turned_off_for_fixed_placement():
    frames = [synthetic(i, 1 if i == 7 else (CELLS if i else 0), 0.0) for i in range(20)]
    assert [f.index for f, m in FixedSchedule(5).mark(frames) if m.cut] == [7]
    assert not any(m.cut for _, m in FixedSchedule(5, cut_valid=0, iframe_valid=0).mark(frames))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.data())
def test_fixed_is_index_modulo_n_plus_the_first_frame(n, data):
    phase = data.draw(st.integers(0, n - 1))
    start = data.draw(st.integers(0, 30))
    length = data.draw(st.integers(0, 40))
    frames = [synthetic(i, CELLS, 1.0) for i in range(start, start + length)]
    marked = list(FixedSchedule(n, phase).mark(frames))
    assert [f.index for f, _ in marked] == list(range(start, start + length))
    for j, (f, mark) in enumerate(marked):
        expected = ("start",) if j == 0 else (("interval",) if f.index % n == phase else ())
        assert mark.reasons == expected and not mark.cut


@pytest.mark.parametrize("spend", [True, False])
def test_mark_reads_at_most_lookahead_frames_ahead(spend):
    sch = AdaptiveSchedule(4, spend=spend)
    pulled = []

    def source():
        for i in range(60):
            pulled.append(i)
            yield synthetic(i, CELLS if i % 17 else 2, 3.0)

    for f, _ in sch.mark(source()):
        assert len(pulled) <= f.index + 1 + sch.lookahead
    assert sch.lookahead == sch.max_interval == 8


def test_static_content_spends_the_budget_evenly_unless_told_to_save():
    k, t = 5, 47
    frames = [synthetic(i, CELLS if i else 0, 0.0) for i in range(t)]
    spent = keys(AdaptiveSchedule(k), frames)
    assert spent == list(range(0, t, k)) == keys(FixedSchedule(k), frames)
    saved = keys(AdaptiveSchedule(k, spend=False), frames)
    assert saved == list(range(0, t, 2 * k))
    longer = [synthetic(i, CELLS if i else 0, 0.0) for i in range(56)]
    assert keys(AdaptiveSchedule(k, 3 * k, spend=False), longer) == [0, 15, 30, 45, 50]  # anchor


def test_bad_arguments_are_user_errors():
    for bad in (
        lambda: make_schedule("sometimes", 5),
        lambda: make_schedule("adaptive", 5, phase=2),
        lambda: make_schedule("adaptive", 0),
        lambda: make_schedule("fixed", 5, phase=5),
        lambda: AdaptiveSchedule(5, 4),
        lambda: AdaptiveSchedule(5, anchor=12),
        lambda: AdaptiveSchedule(5, cut_valid=1.5),
        lambda: FixedSchedule(5, iframe_valid=-0.1),
    ):
        with pytest.raises(BmvsegError):
            bad()
    assert isinstance(make_schedule("fixed", 5, 2), FixedSchedule)
    adaptive = make_schedule("adaptive", 5, max_interval=12)
    assert isinstance(adaptive, AdaptiveSchedule) and adaptive.lookahead == 12


# --- real H.264 clips ------------------------------------------------------------------------

H, W, K, CUT, LENGTH = 96, 128, 5, 13, 30


def _read(frames, options, **kw) -> list[Frame]:
    buf = io.BytesIO()
    encode_video(frames, buf, options=options)
    buf.seek(0)
    return list(VideoReader(buf).frames(images=False, **kw))


@pytest.fixture(scope="module")
def cut_clip() -> list[np.ndarray]:
    """Two different moving textures joined: a hard cut at frame 13, not a multiple of k."""
    a = moving_texture_clip("translate", H, W, CUT, seed=1, speed=1.5)[0]
    b = moving_texture_clip("object", H, W, LENGTH - CUT, seed=7, speed=2.0)[0]
    return a + b


@pytest.mark.parametrize(
    "options",
    [X264_ONE_REF, {}],  # vectors read natively; x264 defaults (B-frames, an I-frame at the cut)
    ids=["one-ref", "x264-default"],
)
@pytest.mark.parametrize("spend", [True, False])
def test_a_hard_cut_in_a_real_clip_is_a_keyframe(cut_clip, options, spend):
    frames = _read(cut_clip, options)
    sch = AdaptiveSchedule(K, spend=spend)
    marked = reasons(sch, frames)
    assert marked[CUT] == ("cut",)
    assert [i for i, r in marked.items() if "cut" in r] == [CUT]
    assert sum(bool(r) for r in marked.values()) <= math.ceil(LENGTH / K) + 1
    # fixed placement adds no keyframe there but marks the cut, so nothing fuses across it
    fixed = dict((f.index, m) for f, m in FixedSchedule(K).mark(frames))
    assert not fixed[CUT].keyframe and [i for i, m in fixed.items() if m.cut] == [CUT]


def test_a_real_static_clip_gets_the_budget_evenly_or_half_of_it(cut_clip):
    frames = _read([cut_clip[0]] * LENGTH, X264_ONE_REF)
    assert all(signal(f).valid == 1.0 for f in frames[1:])  # all cells predicted, nothing moves
    assert keys(AdaptiveSchedule(K), frames) == list(range(0, LENGTH, K))
    assert keys(AdaptiveSchedule(K, spend=False), frames) == list(range(0, LENGTH, 2 * K))


def test_a_range_of_a_real_clip_started_at_an_anchor_places_the_same_keyframes(cut_clip):
    sch = AdaptiveSchedule(K, anchor=2 * K)
    whole = keys(sch, _read(cut_clip, X264_ONE_REF))
    assert CUT in whole
    for start in (10, 20):
        part = keys(sch, _read(cut_clip, X264_ONE_REF, start=start))
        assert part == [i for i in whole if i >= start]
