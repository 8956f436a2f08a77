"""Exporting a run's best.pt as shipped weights carries the evaluation on test/ and val/."""

import json

import cv2
import numpy as np

from bmvseg.models.checkpoint import read_checkpoint, save_checkpoint
from bmvseg.models.enet import ENetLite
from bmvseg.models.registry import build_model
from bmvseg.training.export import export_run


def _camvid_fixture(root, rng):
    for split in ("test", "val"):
        for k in range(2):
            (root / split).mkdir(parents=True, exist_ok=True)
            (root / f"{split}annot").mkdir(exist_ok=True)
            cv2.imwrite(str(root / split / f"0016E5_0{k}.png"), rng.integers(0, 256, (24, 32, 3)))
            lab = rng.integers(0, 12, (24, 32)).astype(np.uint8)
            cv2.imwrite(str(root / f"{split}annot" / f"0016E5_0{k}.png"), lab)


def test_export_writes_weights_with_both_evaluations(tmp_path):
    rng = np.random.default_rng(0)
    _camvid_fixture(tmp_path / "camvid", rng)
    run = tmp_path / "run"
    save_checkpoint(
        run / "best.pt", ENetLite(), {"model_name": "enet_lite", "dataset": "camvid", "epoch": 3}
    )
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "elapsed_s": 60.0}]))
    dest = tmp_path / "enet_lite.pt"
    export_run(run, tmp_path / "camvid", dest)
    meta = read_checkpoint(dest)["meta"]
    for split in ("test", "val"):
        ev = meta["evaluation"][split]
        assert ev["images"] == 2 and len(ev["iou"]) == 11 and 0.0 <= ev["miou"] <= 1.0
    assert meta["training_time_s_total"] == 60.0 and meta["epoch"] == 3
    assert build_model("enet_lite", weights=dest).num_classes == 11
    assert "val/" in (run / "export.md").read_text()
