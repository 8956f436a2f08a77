"""Real footage from outside the project (``../shared/data/real/``, see its README): cuts, a
stream with visible defects, 720p H.264, a codec without vectors.

Each clip is segmented through the Python API (``bmvseg.segment``) with inter-BMV at k = 10,
fixed and adaptive placement, over ranges that end at the video's end (so the frame count can
be checked against the decoder's) or that hold a cut; ranges start where both placements place
the same keyframes as a whole run (a multiple of 10 for fixed placement, of 100 for adaptive),
so each is what a whole run gives for its frames.  The folder is not part of the repository:
every test skips, saying so, where it is absent.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest
import torch

import bmvseg
from bmvseg.models.base import SegmentationModel
from bmvseg.models.registry import build_model
from bmvseg.video.reader import VideoReader

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
K = 10

# name -> (the hard cuts, the frames with visible defects coded into the stream)
CLIPS = {
    "Megamind.avi": ([1, 98, 154, 200], []),
    "Megamind_bugy.avi": ([1, 98, 154, 200], [40, 75, 100]),
    "bigbuckbunny.mp4": ([], []),
    "tree.avi": ([], []),
}


def clip(name: str) -> Path:
    path = REAL / name
    if not path.is_file():
        pytest.skip(f"real footage {name} not found in {REAL} (a shared folder beside the "
                    "project, not part of the repository)")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def model() -> SegmentationModel:
    torch.manual_seed(0)
    return build_model("enet_lite", weights=None).eval()


def segment(model, path: Path, keyframes: str, start: int = 0, end: int | None = None) -> list:
    return list(bmvseg.segment(path, model=model, scheme="inter-bmv", interval=K,
                               keyframes=keyframes, start=start, end=end))  # fmt: skip


def decoded_count(path: Path) -> int:
    """Frames the decoder gives, counted without bmvseg."""
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def check_no_fusion_across_cuts(out: list) -> set[int]:
    """No result's features come from a keyframe across a cut while one of the keyframes
    around it is on its side (a frame between two cuts of one interval has none); the cuts."""
    cuts = {r.index for r in out if r.cut}
    keys = [r.index for r in out if r.keyframe]

    def crosses(a: int, b: int) -> bool:
        lo, hi = sorted((a, b))
        return any(lo < c <= hi for c in cuts)

    for r in out:
        assert r.reason == (r.reasons[0] if r.keyframe else None)
        assert ("cut" in r.reasons) == (r.cut and r.keyframe), (r.index, r.reasons)
        if not r.keyframe:
            nxt = [k for k in keys if k > r.index][:1]  # none past a range's end
            around = (r.index - r.offset, *nxt)
            assert r.sources and (set(r.sources) <= set(around) or not nxt)
            if any(crosses(s, r.index) for s in r.sources):
                assert all(crosses(k, r.index) for k in around), (r.index, r.sources, cuts)
    return cuts


# The last frames of each clip, from a frame both placements keep (an adaptive anchor).
TAILS = {"Megamind.avi": 200, "Megamind_bugy.avi": 200, "bigbuckbunny.mp4": 100, "tree.avi": 0}


@pytest.mark.parametrize("keyframes", ["fixed", "adaptive"])
@pytest.mark.parametrize("name", list(CLIPS))
def test_a_real_clip_runs_to_its_end(model, name, keyframes):
    path, start = clip(name), TAILS[name]
    out = segment(model, path, keyframes, start=start)
    total = decoded_count(path)
    assert [r.index for r in out] == list(range(start, total))
    assert out[0].keyframe and out[-1].keyframe  # the range's start and the closing keyframe
    cuts = check_no_fusion_across_cuts(out)
    assert cuts == {c for c in CLIPS[name][0] if c >= start}
    assert not any(r.damaged for r in out)
    if start in cuts:  # the range's first keyframe, and a cut all the same
        assert out[0].reasons == ("start", "cut")


@pytest.mark.parametrize("keyframes, start, end", [("fixed", 90, 110), ("adaptive", 0, 105)])
def test_the_cuts_of_a_real_trailer_are_never_fused_across(model, keyframes, start, end):
    """Megamind's cut at 98 falls inside a fixed interval (90-100): marked, no keyframe added,
    nothing fused across it; adaptive placement makes it (and the cut after frame 0) a
    keyframe whose reasons name the cut."""
    out = segment(model, clip("Megamind.avi"), keyframes, start, end)
    assert [r.index for r in out] == list(range(start, end))
    cuts = check_no_fusion_across_cuts(out)
    assert cuts == {c for c in (1, 98) if c > start}
    at = {r.index: r for r in out}
    if keyframes == "fixed":
        assert not at[98].keyframe and [r.index for r in out if r.keyframe] == [90, 100]
        assert at[97].sources == (90,) and at[99].sources == (100,)
    else:
        assert "cut" in at[1].reasons and "cut" in at[98].reasons


def test_the_visible_defects_of_a_real_stream_are_flagged(model):
    """Megamind_bugy's defects (a white box at 40, a mirrored frame at 75, a green bar at 100)
    are coded pictures, not damage the decoder conceals: the reader reports no damage, and
    the cut test flags each defect and the frame after it, so nothing is fused across them."""
    path = clip("Megamind_bugy.avi")
    with VideoReader(path) as reader:
        assert len(list(reader.frames(images=False, end=1))) == 1
    out = segment(model, path, "fixed", 70, 110)
    cuts = check_no_fusion_across_cuts(out)
    assert {75, 76, 100, 101} <= cuts and not any(r.damaged for r in out)
    assert out[100 - 70].reasons == ("interval", "cut")
