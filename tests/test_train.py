"""The training loop on a tiny learnable dataset: loss falls, resume continues exactly, report."""

import json

import numpy as np
import pytest
import torch

from bmvseg.cli.main import main
from bmvseg.data.registry import register_dataset
from bmvseg.models.registry import build_model
from bmvseg.training.train import TrainConfig, train


class Stripes:
    """Class 0 where the image is reddish, 1 where bluish, void on a grey band: learnable fast."""

    class_names = ("red", "blue")
    palette = np.array([[255, 0, 0], [0, 0, 255]], np.uint8)

    def __init__(self, root, split, n=8):
        self.n = n if split == "train" else 2
        self.seed = 0 if split == "train" else 100

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        rng = np.random.default_rng(self.seed + i)
        h, w = 48, 64
        cut = int(rng.integers(16, 48))
        lab = np.zeros((h, w), np.uint8)
        lab[:, cut:] = 1
        rgb = np.where(lab[..., None] == 0, [200, 40, 40], [40, 40, 200]).astype(np.int16)
        rgb = np.clip(rgb + rng.integers(-30, 30, (h, w, 3)), 0, 255).astype(np.uint8)
        lab[:4] = 255
        rgb[:4] = 128
        return rgb, lab


register_dataset("stripes-test", Stripes)


def _cfg(out, epochs):
    return TrainConfig(
        dataset="stripes-test",
        root=None,
        model="enet_lite",
        out=str(out),
        epochs=epochs,
        batch_size=4,
        crop=(48, 64),
        scale=(0.75, 1.25),
        lr=5e-3,
        warmup_iters=0,
        workers=0,
        threads=1,
        command="test",
    )


def test_loss_falls_resume_is_exact_and_report_is_written(tmp_path):
    straight = train(_cfg(tmp_path / "a", 4), progress=False)
    hist = json.loads((tmp_path / "a" / "history.json").read_text())
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4]
    assert hist[-1]["loss"] < hist[0]["loss"]

    train(_cfg(tmp_path / "b", 4), progress=False, stop_after=2)  # as if interrupted
    assert len(json.loads((tmp_path / "b" / "history.json").read_text())) == 2
    resumed = train(_cfg(tmp_path / "b", 99), resume=True, progress=False)  # saved config wins
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert resumed["miou"] == pytest.approx(straight["miou"])

    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["class_names"] == ["red", "blue"] and len(report["iou"]) == 2
    assert "mIoU" in (tmp_path / "a" / "report.md").read_text()
    model = build_model("enet_lite", weights=tmp_path / "a" / "best.pt")  # 2 classes from the file
    assert model.class_names == ("red", "blue")


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    assert main(["train", "--dataset", "stripes-test", "-o", str(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "last.pt" in err
    assert main(["evaluate", "--dataset", "camvid", "--root", str(tmp_path / "none")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_last_epoch_is_evaluated_when_training_stops_between_evaluations(tmp_path):
    import dataclasses

    cfg = dataclasses.replace(_cfg(tmp_path, 4), eval_every=3)
    train(cfg, progress=False, stop_after=2)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert "miou" not in hist[0] and "miou" in hist[1]
    assert json.loads((tmp_path / "report.json").read_text())["best_epoch"] == 2
