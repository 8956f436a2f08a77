"""The synthetic street generator: determinism, labels, exact flow, the writer and the dataset.

The flow is checked two independent ways: warping frame t-1 with it must reproduce frame t
(colours and labels), and the vectors of a real H.264 encoding of the clip must agree with it.
"""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest

from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from bmvseg.data.synthetic import (
    SPLIT_SEEDS,
    SyntheticScenes,
    read_clip,
    render_clip,
    split_seed,
    write_clip,
)
from bmvseg.errors import BmvsegError
from bmvseg.video.reader import read_motion

H, W, T = 120, 160, 12
# the encoded clip is larger: at 160x120 most true motions are under a pixel
EH, EW, ET = 240, 320, 10
CLS = {n: i for i, n in enumerate(CAMVID_CLASSES)}


@pytest.fixture(scope="module")
def clip_arrays():
    return render_clip(seed=3, height=H, width=W, frames=T).arrays()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    clip = render_clip(seed=5, height=EH, width=EW, frames=ET)
    video = write_clip(clip, tmp_path_factory.mktemp("clip"))
    return clip, video


def pull(image: np.ndarray, flow: np.ndarray, interpolation: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``image`` (frame t-1) at p + flow (pixel centres); also the in-frame mask."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return cv2.remap(image, mx, my, interpolation, borderMode=cv2.BORDER_REPLICATE), inside


def test_same_seed_same_frames_other_seed_other_street():
    a = render_clip(seed=11, height=96, width=128, frames=20)
    b = render_clip(seed=11, height=96, width=128, frames=20)
    c = render_clip(seed=12, height=96, width=128, frames=20)
    fa, fb, fc = a.frame(7), b.frame(7), c.frame(7)
    assert np.array_equal(fa.rgb, fb.rgb)
    assert np.array_equal(fa.labels, fb.labels)
    assert np.array_equal(fa.flow, fb.flow)
    assert not np.array_equal(fa.labels, fc.labels)
    # random access gives the frame that streaming gives
    streamed = next(f for f in a if f.index == 7)
    assert np.array_equal(streamed.rgb, fa.rgb) and np.array_equal(streamed.flow, fa.flow)


def test_frames_are_rgb_uint8_and_labels_cover_the_street(clip_arrays):
    rgb, labels, flow = clip_arrays
    assert rgb.shape == (T, H, W, 3) and rgb.dtype == np.uint8
    assert labels.shape == (T, H, W) and labels.dtype == np.uint8
    assert flow.shape == (T, H, W, 2) and flow.dtype == np.float32
    assert labels.max() < len(CAMVID_CLASSES)  # every pixel has a class, never void
    present = {CAMVID_CLASSES[k] for k in np.unique(labels)}
    needed = {"road", "sky", "building", "car", "pedestrian", "tree", "pole", "pavement"}
    assert needed <= present, needed - present
    # the scene looks like a street: sky above road, colours of the sky and road differ
    assert labels[:, 0].tolist().count(CLS["road"]) == 0
    assert (labels[:, -1] == CLS["road"]).mean() > 0.5
    assert rgb.std() > 20


def test_all_eleven_classes_appear_in_a_clip():
    clip = render_clip(seed=0, height=H, width=W, frames=T)
    seen = set()
    for i in range(0, T, 3):
        seen |= set(np.unique(clip.frame(i, flow=False, rgb=False).labels).tolist())
    assert seen == set(range(len(CAMVID_CLASSES)))


def test_flow_of_frame_zero_is_zero_and_the_camera_moves(clip_arrays):
    _, _, flow = clip_arrays
    assert not flow[0].any()
    speed = np.linalg.norm(flow[1:], axis=-1)
    assert np.median(speed) > 0.3  # forward motion and panning: most pixels move
    # forward motion: the bottom corners (near road) move outwards, i.e. came from nearer the
    # centre, so their pull offsets point inwards
    assert np.median(flow[1:, -5:, :5, 0]) > 0 and np.median(flow[1:, -5:, -5:, 0]) < 0


def test_warping_the_previous_frame_with_the_flow_reproduces_the_frame(clip_arrays):
    rgb, labels, flow = clip_arrays
    for t in range(1, T):
        warped_labels, inside = pull(labels[t - 1], flow[t], cv2.INTER_NEAREST)
        agree = warped_labels == labels[t]
        # pixels on a label edge (a 1-px band) are ambiguous under nearest sampling
        assert agree[inside & interior(labels[t])].mean() >= 0.95, t
        assert agree[inside].mean() >= 0.9, t
        # colours on pixels whose content was visible in t-1 (same label, away from edges)
        visible = cv2.erode((agree & inside).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        warped, _ = pull(rgb[t - 1], flow[t], cv2.INTER_LINEAR)
        diff = np.abs(warped.astype(np.int16) - rgb[t].astype(np.int16)).mean(-1)
        still = np.abs(rgb[t - 1].astype(np.int16) - rgb[t].astype(np.int16)).mean(-1)
        assert np.median(diff[visible]) <= 3.0, t
        assert diff[visible].mean() < 0.7 * still[visible].mean(), t  # the flow explains motion


def interior(labels: np.ndarray) -> np.ndarray:
    """Pixels not on a label edge (their 3x3 neighbourhood has one class)."""
    k = np.ones((3, 3), np.uint8)
    return cv2.erode(labels, k) == cv2.dilate(labels, k)


def test_independently_moving_objects_have_their_own_exact_flow():
    clip = render_clip(seed=8, height=H, width=W, frames=20)
    r = clip.renderer
    best = None
    for t in range(1, 20, 3):  # the frame showing the most of moving objects
        g, rays, C, _ = r.gbuffer(t)
        moving = (g.hit >= 0) & (np.abs(r.q_vel[np.maximum(g.hit, 0)]).sum(-1) > 0)
        if best is None or moving.sum() > best[1].sum():
            best = (t, moving, g, rays, C)
    t, moving, g, rays, C = best
    assert moving.sum() > 100
    flow = r.flow(t, g, rays, C)
    still = r.q_vel.copy()
    r.q_vel[:] = 0  # the flow the pixels would have if everything stood still
    try:
        static_flow = r.flow(t, g, rays, C)
    finally:
        r.q_vel[:] = still
    prev = clip.frame(t - 1, flow=False).labels
    m = moving & interior(g.labels)
    true_agree = (pull(prev, flow, cv2.INTER_NEAREST)[0] == g.labels)[m].mean()
    static_agree = (pull(prev, static_flow, cv2.INTER_NEAREST)[0] == g.labels)[m].mean()
    assert true_agree > 0.95
    assert static_agree < true_agree - 0.1
    assert np.abs(flow - static_flow)[moving].max() > 1.0


def test_codec_vectors_agree_with_the_exact_flow(written):
    _, video = written
    gt = read_clip(video.parent)
    mv, valid, picts, _, info = read_motion(video, motion="native")
    assert info["motion_source"] == "native" and picts[0] == "I" and set(picts[1:]) == {"P"}
    b = info["block"]
    hb, wb = mv.shape[1:3]
    with av.open(str(video)) as container:
        grey_frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    errors, moves = [], []
    for t in range(1, ET):
        f = np.pad(gt.flow[t], ((0, hb * b - EH), (0, wb * b - EW), (0, 0)), "edge")
        blocks = f.reshape(hb, b, wb, b, 2)
        mean, spread = blocks.mean((1, 3)), blocks.std((1, 3)).max(-1)
        grey = np.pad(
            grey_frames[t].astype(np.float32), ((0, hb * b - EH), (0, wb * b - EW)), "edge"
        )
        texture = grey.reshape(hb, b, wb, b).std((1, 3))
        ok = valid[t] & (spread < 0.5) & (texture > 4)  # one motion, something to match
        errors.append(np.linalg.norm(mv[t] - mean, axis=-1)[ok])
        moves.append(np.linalg.norm(mean, axis=-1)[ok])
    err, move = np.concatenate(errors), np.concatenate(moves)
    assert err.size > 100
    assert np.median(err) <= 1.0
    assert np.median(move) > 3 * np.median(err)  # it is not agreement on standing still


def test_written_clip_has_video_labels_flow_and_meta(written):
    clip, video = written
    d = video.parent
    assert {p.name for p in d.iterdir()} >= {"video.mp4", "labels.npz", "flow.npz", "meta.json"}
    meta = json.loads((d / "meta.json").read_text())
    assert meta["seed"] == 5 and (meta["height"], meta["width"], meta["frames"]) == (EH, EW, ET)
    assert meta["class_names"] == list(CAMVID_CLASSES)
    assert meta["palette"] == CAMVID_PALETTE.tolist()
    assert meta["encoder"]["codec"] == "libx264" and meta["encoder"]["frames"] == ET
    assert meta["encoder"]["options"]["bframes"] == "0"
    gt = read_clip(d)
    assert gt.labels.shape == (ET, EH, EW) and gt.labels.dtype == np.uint8
    assert gt.flow.shape == (ET, EH, EW, 2)
    f = clip.frame(ET - 1)
    assert np.array_equal(gt.labels[ET - 1], f.labels)
    assert gt.flow.dtype == np.float32
    assert np.abs(gt.flow[ET - 1] - f.flow).max() <= 1 / 32 + 1e-6  # stored in 1/16 px
    with av.open(str(video)) as container:
        decoded = [fr.to_ndarray(format="rgb24") for fr in container.decode(video=0)]
    assert len(decoded) == ET and decoded[0].shape == (EH, EW, 3)
    mse = np.mean((decoded[ET - 1].astype(np.float32) - f.rgb.astype(np.float32)) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28  # the video is the rendered frames


def test_write_without_flow_and_bad_inputs(tmp_path):
    clip = render_clip(seed=1, height=64, width=96, frames=3)
    write_clip(clip, tmp_path / "c", flow=False)
    assert read_clip(tmp_path / "c").flow is None
    with pytest.raises(BmvsegError, match="meta.json"):
        read_clip(tmp_path)
    with pytest.raises(BmvsegError, match="height"):
        render_clip(seed=0, height=8, width=96, frames=3)
    with pytest.raises(IndexError):
        clip.frame(3)


def test_dataset_splits_are_disjoint_deterministic_and_camvid_shaped():
    ds = SyntheticScenes("val", frames_per_clip=2, clips=2, height=72, width=96)
    assert len(ds) == 4
    assert ds.class_names == CAMVID_CLASSES and ds.palette is CAMVID_PALETTE
    rgb, labels = ds[3]
    assert rgb.shape == (72, 96, 3) and rgb.dtype == np.uint8
    assert labels.shape == (72, 96) and labels.dtype == np.uint8 and labels.max() < 11
    again = SyntheticScenes("val", frames_per_clip=2, clips=2, height=72, width=96, cache=False)
    assert np.array_equal(again[3][0], rgb) and np.array_equal(again[3][1], labels)
    assert not np.array_equal(ds[0][0], ds[1][0])  # frames spread over the clip
    seeds = {s: {split_seed(s, c) for c in range(1000)} for s in SPLIT_SEEDS}
    assert not (seeds["train"] & seeds["val"]) and not (seeds["val"] & seeds["test"])
    assert not (seeds["train"] & seeds["test"])
    with pytest.raises(BmvsegError, match="split"):
        SyntheticScenes("everything")


def test_dataset_is_registered():
    registry = pytest.importorskip("bmvseg.data.registry")
    ds = registry.get_dataset("synthetic", None, "test", clips=1, frames_per_clip=1, height=48,
                              width=64)  # fmt: skip
    rgb, labels = ds[0]
    assert rgb.shape == (48, 64, 3) and labels.shape == (48, 64)
