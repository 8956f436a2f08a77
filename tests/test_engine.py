"""The engine's invariants: k=1 is per-frame, static video is exact, known motion is followed,
ranges compose, no frame is dropped or duplicated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bmvseg.data.textures import moving_texture_clip, smooth_texture
from bmvseg.errors import BmvsegError
from bmvseg.models.base import SegmentationModel
from bmvseg.models.registry import build_model
from bmvseg.schemes.engine import SCHEMES, Engine, EngineConfig
from bmvseg.schemes.registry import scheme_traits
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.reader import VideoReader

H, W = 96, 128


@pytest.fixture(scope="module")
def model() -> SegmentationModel:
    torch.manual_seed(0)
    return build_model("enet_lite", weights=None).to(memory_format=torch.channels_last).eval()


def encode(tmp: Path, frames: list[np.ndarray], name: str) -> Path:
    path = tmp / name
    encode_video(frames, path, options={"crf": "12", "preset": "medium", **X264_ONE_REF})
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("engine")
    tex = smooth_texture(H, W, seed=3, scale=6.0)
    big = smooth_texture(H, W + 16 * 12, seed=4, scale=6.0)
    return {
        "static": encode(tmp, [tex] * 9, "static.mp4"),
        # Content moves 16 px (a whole block, and a multiple of every stride) left per frame.
        "pan": encode(tmp, [big[:, 16 * t : 16 * t + W] for t in range(11)], "pan.mp4"),
        "slow_pan": encode(tmp, [big[:, 4 * t : 4 * t + W] for t in range(7)], "slow.mp4"),
        "moving": encode(
            tmp, moving_texture_clip("object", H, W, 13, seed=5, speed=2.0)[0], "o.mp4"
        ),
    }


def run(model, path, scheme, n, start=0, end=None, **kw) -> list:
    engine = Engine(model, EngineConfig(scheme=scheme, interval=n, **kw))
    with VideoReader(path) as reader:
        return list(engine.run(reader.frames(start=start), start=start, end=end))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_interval_one_is_per_frame(model, clips, scheme) -> None:
    ref = run(model, clips["moving"], "per-frame", 1)
    out = run(model, clips["moving"], scheme, 1)
    assert [r.index for r in out] == list(range(13))
    for a, b in zip(ref, out, strict=True):
        assert np.array_equal(a.labels, b.labels)


@pytest.mark.parametrize("scheme", ["prop-bmv", "inter-bmv", "prop-flow", "inter-flow"])
@pytest.mark.parametrize("n", [3, 4])
def test_static_video_equals_per_frame(model, clips, scheme, n) -> None:
    ref = run(model, clips["static"], "per-frame", 1)
    out = run(model, clips["static"], scheme, n)
    for a, b in zip(ref, out, strict=True):
        assert (a.labels == b.labels).mean() > 0.999, (scheme, a.index)


@pytest.mark.parametrize("scheme", ["prop-bmv", "inter-bmv"])
def test_known_translation_is_followed(model, clips, scheme) -> None:
    ref = run(model, clips["pan"], "per-frame", 1)
    n, m = 3, 16  # interval, interior margin
    out = run(model, clips["pan"], scheme, n)
    for a, b in zip(ref, out, strict=True):
        # Content enters at the right edge 16 px per frame and leaves at the left: features
        # warped from the previous keyframe know nothing of the right 16*p px, those warped back
        # from the next keyframe nothing of the left 16*(n-p) px.  Compare where they can know.
        right = W - m - 16 * b.offset
        left = m + (16 * (n - b.offset) if scheme == "inter-bmv" and b.offset else 0)
        agree = (a.labels[m:-m, left:right] == b.labels[m:-m, left:right]).mean()
        assert agree >= 0.95, (scheme, a.index, agree)
    # A wrong sign or swapped axes would fail the above; make sure it is not vacuous.
    shifted = np.roll(ref[3].labels, 16, axis=1)
    assert (shifted[m:-m, m:-m] == ref[3].labels[m:-m, m:-m]).mean() < 0.9


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_frame_once_in_order_with_tail(model, clips, scheme) -> None:
    out = run(model, clips["moving"], scheme, 5)  # 13 frames: tail of 3 after keyframe 10
    assert [r.index for r in out] == list(range(13))
    keys = [r.index for r in out if r.keyframe]
    traits = scheme_traits(scheme)
    expected = (
        ([0, 5, 10, 12] if traits.fuses else [0, 5, 10])  # fusing: the tail is closed
        if traits.uses_interval
        else list(range(13))
    )
    assert keys == expected
    assert all(r.offset == 0 for r in out if r.keyframe)


def test_inter_bmv_keyframes_equal_per_frame(model, clips) -> None:
    ref = run(model, clips["moving"], "per-frame", 1)
    out = run(model, clips["moving"], "inter-bmv", 4)
    for r in out:
        if r.keyframe:
            assert np.array_equal(r.labels, ref[r.index].labels)


@pytest.mark.parametrize("scheme", ["prop-bmv", "inter-bmv", "prop-flow", "inter-flow"])
@pytest.mark.parametrize("accumulate", [False, True])
def test_ranges_concatenate_to_whole_run(model, clips, scheme, accumulate) -> None:
    whole = run(model, clips["moving"], scheme, 4, accumulate=accumulate)
    parts = run(model, clips["moving"], scheme, 4, 0, 8, accumulate=accumulate)
    parts += run(model, clips["moving"], scheme, 4, 8, None, accumulate=accumulate)
    assert [r.index for r in parts] == [r.index for r in whole]
    for a, b in zip(whole, parts, strict=True):
        assert np.array_equal(a.labels, b.labels), (scheme, a.index)


def test_range_must_start_on_keyframe(model, clips) -> None:
    with pytest.raises(BmvsegError, match="not a keyframe"):
        run(model, clips["moving"], "inter-bmv", 4, 3, 8)


@pytest.mark.parametrize("scheme", ["prop-flow", "inter-flow"])
def test_optical_flow_follows_a_gentle_pan(model, clips, scheme) -> None:
    # DIS cannot lock onto 16 px/frame at 128x96 (its pyramid is too shallow), so a slower pan.
    n = 3
    ref = run(model, clips["slow_pan"], "per-frame", 1)
    out = run(model, clips["slow_pan"], scheme, n)
    for a, b in zip(ref, out, strict=True):
        right = W - 16 - 4 * b.offset
        left = 16 + (4 * (n - b.offset) if scheme_traits(scheme).fuses and b.offset else 0)
        assert (a.labels[16:-16, left:right] == b.labels[16:-16, left:right]).mean() >= 0.9


@pytest.mark.parametrize("scheme", SCHEMES)
def test_lean_labels_equal_full_upsample_then_argmax(model, clips, scheme) -> None:
    """The sparse arg-max path equals bilinear-upsample-then-arg-max, exact ties aside."""
    full = run(model, clips["moving"], scheme, 4, keep_logits=True)  # the full-size path
    lean = run(model, clips["moving"], scheme, 4)
    ties = 0
    for a, b in zip(full, lean, strict=True):
        differ = a.labels != b.labels
        if differ.any():
            top2 = a.logits[0].topk(2, dim=0).values
            tied = (top2[0] - top2[1]).abs().numpy() <= 1e-5 * top2[0].abs().numpy().max()
            assert tied[differ].all(), (scheme, a.index, int(differ.sum()))
            ties += int(differ.sum())
    assert ties <= 0.001 * H * W * len(full)


# x264's own scene-cut detection on (the cut becomes an I-frame); a constant quantiser, so the
# frames before the cut are coded the same whatever follows it.
CUT_OPTIONS = {"qp": "12", "refs": "1", "bframes": "0"}


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if scheme_traits(s).fuses])
def test_adaptive_keyframes_put_a_keyframe_on_a_hard_cut(model, tmp_path, scheme) -> None:
    """A cut at a frame that is not a multiple of k gets a keyframe, and no frame before the cut
    is interpolated from features after it; the budget of fixed placement is kept."""
    n, cut, T = 5, 13, 30
    a, _ = moving_texture_clip("translate", H, W, cut, seed=11, speed=2.0)
    b, _ = moving_texture_clip("zoom", H, W, T - cut, seed=12, speed=1.0)
    b = [255 - f for f in b]  # another scene: other texture, other colours
    video = tmp_path / "cut.mp4"
    encode_video([*a, *b], video, options=CUT_OPTIONS)
    out = run(model, video, scheme, n, keyframes="adaptive")
    keys = {r.index: r.reason for r in out if r.keyframe}
    assert keys.get(cut) is not None, keys
    assert all(min(k for k in keys if k > t) <= cut for t in range(cut) if t not in keys)
    # No frame before the cut gets features from it: with the cut frame's features removed
    # (a shifted scene after the cut), the frames before it keep their labels.
    b2 = [np.roll(f, 37, axis=1) for f in b]
    video2 = tmp_path / "cut2.mp4"
    encode_video([*a, *b2], video2, options=CUT_OPTIONS)
    out2 = run(model, video2, scheme, n, keyframes="adaptive")
    assert [r.index for r in out2 if r.keyframe] == sorted(keys)
    for r1, r2 in zip(out[:cut], out2[:cut], strict=True):
        assert np.array_equal(r1.labels, r2.labels), r1.index
    assert len(keys) <= -(-T // n) + 1
    fixed = [r.index for r in run(model, video, scheme, n) if r.keyframe]
    assert cut not in fixed  # not vacuous: fixed placement interpolates across the cut


def _crosses(source: int, index: int, cuts: set[int]) -> bool:
    """Whether features carried from keyframe ``source`` to frame ``index`` pass a cut."""
    lo, hi = sorted((source, index))
    return any(lo < c <= hi for c in cuts)


def _two_scenes(tmp_path: Path, cut: int, T: int, shift: int = 0, name: str = "cut.mp4") -> Path:
    a, _ = moving_texture_clip("translate", H, W, cut, seed=11, speed=2.0)
    b, _ = moving_texture_clip("zoom", H, W, T - cut, seed=12, speed=1.0)
    b = [np.roll(255 - f, shift, axis=1) for f in b]  # another scene: other texture and colours
    video = tmp_path / name
    encode_video([*a, *b], video, options=CUT_OPTIONS)
    return video


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if scheme_traits(s).fuses])
@pytest.mark.parametrize(
    "keyframes, cut",
    [("fixed", 13), ("fixed", 10), ("adaptive", 13), ("adaptive-lean", 20)],
    ids=["fixed-mid-interval", "fixed-on-interval", "adaptive", "adaptive-lean"],
)
def test_no_interval_fuses_across_a_cut_whatever_placed_its_keyframes(
    model, tmp_path, scheme, keyframes, cut
) -> None:
    """The cut is marked (and named among a keyframe's reasons, whatever placed it); no frame's
    features come from a keyframe on the other side of it, and fixed placement adds no
    keyframe."""
    n, T = 5 if keyframes == "fixed" else 10, 30
    video = _two_scenes(tmp_path, cut, T)
    out = run(model, video, scheme, n, keyframes=keyframes)
    assert [r.index for r in out] == list(range(T))
    cuts = {r.index for r in out if r.cut}
    assert cut in cuts, [(r.index, r.reasons) for r in out if r.keyframe]
    for r in out:
        assert ("cut" in r.reasons) == (r.cut and r.keyframe)
        assert r.reason == (r.reasons[0] if r.keyframe else None)
        assert not any(_crosses(s, r.index, cuts) for s in r.sources), (r.index, r.sources)
    if keyframes == "fixed":
        assert [r.index for r in out if r.keyframe] == [*range(0, T, n), T - 1]
        assert out[cut].reasons == (("interval", "cut") if cut % n == 0 else ())
    else:  # lean placement's keyframe at 20 is placed by the max interval (the case)
        lean = keyframes == "adaptive-lean"
        assert out[cut].reasons == (("max-interval", "cut") if lean else ("cut",))
    # Frames before the cut do not depend on the scene after it.
    shifted = run(model, _two_scenes(tmp_path, cut, T, 37, "b.mp4"), scheme, n,
                  keyframes=keyframes)  # fmt: skip
    for r1, r2 in zip(out[:cut], shifted[:cut], strict=True):
        assert np.array_equal(r1.labels, r2.labels), r1.index


def test_after_damage_keeps_every_reason(model, clips) -> None:
    from bmvseg.schemes.engine import _after_damage
    from bmvseg.schemes.keyframes import Mark
    from bmvseg.video.frame import Frame

    frames = [Frame(i, i / 15, "P", damaged=i in (3, 4)) for i in range(7)]
    marks = [Mark(("start",)), Mark(), Mark(), Mark(), Mark(), Mark(cut=True), Mark()]
    out = [m for _, m in _after_damage(zip(frames, marks, strict=True))]
    assert out[5].reasons == ("after damage", "cut") and not any(m.keyframe for m in out[1:5])


@pytest.mark.parametrize(
    "scheme, forward", [("inter-bmv", "prop-bmv"), ("inter-flow", "prop-flow")]
)
def test_a_concealed_keyframe_never_reaches_the_clean_frames_before_it(
    model, tmp_path, scheme, forward
) -> None:
    """Issue: frames before a concealed keyframe were fused with it.  In a damaged H.264 stream
    (one frame's slice damaged), every frame before the damaged interval equals the clean
    run's labels, and the clean frames of that interval equal the clean clip's forward chain
    alone (what the scheme without fusion gives): nothing of the concealed keyframe."""
    from test_hostile_inputs import _damaged_copies

    n, T, hit = 5, 25, 15  # frame 15: a keyframe of fixed placement
    clean = tmp_path / "clean.h264"
    frames = moving_texture_clip("object", H, W, T, seed=5, speed=1.5)[0]
    encode_video(frames, clean, container_format="h264", options=X264_ONE_REF)
    reference = run(model, clean, scheme, n)
    chain = run(model, clean, forward, n)
    checked = 0
    for bad in _damaged_copies(clean, tmp_path, hit):
        out = run(model, bad, scheme, n)
        damaged = [r.index for r in out if r.damaged]
        if not damaged:
            continue  # a flip the decoder cannot see
        first = damaged[0]
        assert first <= hit and damaged == list(range(first, T)), damaged
        key = max(r.index for r in out[:first] if r.keyframe)
        for r in out[:first]:
            want = reference if r.index <= key else chain
            assert np.array_equal(r.labels, want[r.index].labels), (bad.name, r.index)
            assert r.index <= key or r.sources == (key,)
        checked += 1
    assert checked >= 2, "the decoder flagged none of the damaged copies"


def test_overlay_marks_keyframes() -> None:
    from bmvseg.data.classes import CAMVID_PALETTE, overlay_frame

    img = np.zeros((48, 64, 3), np.uint8)
    labels = np.zeros((48, 64), np.uint8)
    key = overlay_frame(img, labels, CAMVID_PALETTE, keyframe=True)
    other = overlay_frame(img, labels, CAMVID_PALETTE, keyframe=False)
    assert (key[0] == 255).all() and (key[:, -1] == 255).all()
    assert np.array_equal(key[10:-10, 10:-10], other[10:-10, 10:-10]) and (other[0] < 255).all()


def test_inter_flow_on_a_static_video_warps_by_the_identity(model, clips) -> None:
    """Every image of a static video is the same, so DIS finds (almost) no motion: the features
    of a frame between two keyframes are the keyframes' own, fused with weights summing to 1."""
    ref = run(model, clips["static"], "per-frame", 1, keep_features=True)
    out = run(model, clips["static"], "inter-flow", 4, keep_features=True)
    assert [r.index for r in out if r.keyframe] == [0, 4, 8]
    for a, b in zip(ref, out, strict=True):
        for fa, fb in zip(a.features, b.features, strict=True):
            assert (fa - fb).abs().max() <= 0.02 * fa.abs().max(), b.index
        assert (a.labels == b.labels).mean() > 0.999, b.index


def test_summary_records_every_reason_and_every_cut(tmp_path) -> None:
    """A cut on a fixed keyframe is recorded with both reasons; a cut between fixed keyframes
    is recorded in ``cuts`` though it places no keyframe."""
    import json

    from bmvseg.run import RunOptions, segment_to_dir

    on_key = _two_scenes(tmp_path, 10, 20, name="on_key.mp4")
    between = _two_scenes(tmp_path, 13, 20, name="between.mp4")
    opts = RunOptions(interval=5, weights=None)
    for video, cut in ((on_key, 10), (between, 13)):
        out = tmp_path / video.stem
        segment_to_dir(video, out, opts, overlay=False)
        summary = json.loads((out / "summary.json").read_text())
        assert cut in summary["cuts"], summary["cuts"]
        keys = {k["index"]: k for k in summary["keyframes"]}
        if cut in keys:
            assert keys[cut]["reasons"] == ["interval", "cut"], keys[cut]
        else:
            assert cut % 5 != 0
