"""CamVid readers on fixtures written in both layouts, and on the real data when present."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from bmvseg.data.camvid import CAMVID32_TO_11, CamVid, colour_labels_to_ids, video_run
from bmvseg.data.classes import CAMVID_CLASSES, IGNORE_INDEX
from bmvseg.data.registry import get_dataset
from bmvseg.errors import BmvsegError

SHARED_CAMVID = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def test_segnet_layout_reads_images_and_maps_void(tmp_path):
    rng = np.random.default_rng(0)
    names = ["0001TP_000030", "Seq05VD_f00060"]
    for n in names:
        _write_rgb(tmp_path / "test" / f"{n}.png", rng.integers(0, 256, (12, 16, 3), np.uint8))
        lab = rng.integers(0, 12, (12, 16)).astype(np.uint8)  # 11 = void in the files
        (tmp_path / "testannot").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "testannot" / f"{n}.png"), lab)
    ds = get_dataset("camvid", tmp_path, "test")
    assert isinstance(ds, CamVid) and ds.layout == "segnet" and len(ds) == 2
    rgb, lab = ds[0]
    assert rgb.shape == (12, 16, 3) and rgb.dtype == np.uint8 and lab.dtype == np.uint8
    raw = cv2.imread(str(tmp_path / "testannot" / f"{names[0]}.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(lab == IGNORE_INDEX, raw == 11)
    np.testing.assert_array_equal(lab[raw < 11], raw[raw < 11])
    bgr = cv2.imread(str(tmp_path / "test" / f"{names[0]}.png"))
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])  # RGB order, not OpenCV's BGR


def test_original_layout_maps_32_colours_to_11_classes(tmp_path):
    # one pixel per known colour, plus Void (0,0,0), Animal and an unknown colour
    colours = list(CAMVID32_TO_11) + [(0, 0, 0), (64, 128, 64), (1, 2, 3)]
    expected = list(CAMVID32_TO_11.values()) + [IGNORE_INDEX] * 3
    label_rgb = np.array(colours, np.uint8).reshape(1, -1, 3).repeat(2, axis=0)
    _write_rgb(tmp_path / "LabeledApproved_full" / "0006R0_f01020_L.png", label_rgb)
    _write_rgb(tmp_path / "701_StillsRaw_full" / "0006R0_f01020.png", np.zeros_like(label_rgb))
    (tmp_path / "train.txt").write_text(
        "/SegNet/CamVid/train/0006R0_f01020.png /SegNet/CamVid/trainannot/0006R0_f01020.png\n"
    )
    ds = CamVid(tmp_path, "train")
    assert ds.layout == "original"
    _, lab = ds[0]
    np.testing.assert_array_equal(lab, np.array([expected, expected], np.uint8))
    # spot checks of the grouping
    ids = colour_labels_to_ids(np.array([[[128, 0, 192], [64, 128, 192], [0, 0, 64]]], np.uint8))
    assert [CAMVID_CLASSES[i] for i in ids[0]] == ["road", "car", "pole"]
    with pytest.raises(BmvsegError, match="needs a split list"):
        CamVid(tmp_path, "test")


def test_bad_roots_and_splits_are_user_errors(tmp_path):
    with pytest.raises(BmvsegError, match="not a CamVid root"):
        CamVid(tmp_path, "train")
    with pytest.raises(BmvsegError, match="unknown CamVid split"):
        CamVid(tmp_path, "everything")
    with pytest.raises(BmvsegError, match="not a directory"):
        CamVid(tmp_path / "absent", "train")
    with pytest.raises(BmvsegError, match="unknown dataset"):
        get_dataset("no-such-set", tmp_path, "train")


@pytest.mark.skipif(not SHARED_CAMVID.is_dir(), reason=f"CamVid not found at {SHARED_CAMVID}")
def test_real_camvid_splits_and_video_run():
    sizes = {s: len(CamVid(SHARED_CAMVID, s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 367, "val": 101, "test": 233}
    rgb, lab = CamVid(SHARED_CAMVID, "val")[0]
    assert rgb.shape == (360, 480, 3) and lab.shape == (360, 480)
    assert set(np.unique(lab)) <= set(range(11)) | {IGNORE_INDEX}
    run = video_run(SHARED_CAMVID)
    assert len(run) == 101 and run[0].name == "0016E5_07959.png"
    frames = [int(p.stem.split("_")[1]) for p in run]
    assert all(
        b - a == 2 for a, b in zip(frames[:-1], frames[1:], strict=True)
    )  # 15 Hz: every second frame
    train_names = {p.name for p in CamVid(SHARED_CAMVID, "train").images}
    assert not train_names & {p.name for p in run}  # the video is never trained on
