"""The benchmark command end to end on generated data (the CI-sized ``--quick`` mode)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.models.registry import default_weights_path
from bmvseg.schemes.registry import SCHEMES
from bmvseg.video.encode import X264_ONE_REF, encode_video

COLUMNS = {"scheme", "fusion", "interval", "miou_avg", "miou_min", "fps", "speedup"}


def read_rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quick")
    weights = "default" if default_weights_path("synthetic_demo") else "none"
    assert main(["benchmark", "--quick", "-o", str(out), "--weights", weights,
                 "--keyframes", "adaptive"]) == 0  # fmt: skip
    return out


def test_quick_writes_every_output(quick: Path) -> None:
    for name in ("results.csv", "table.md", "fusion.md", "breakdown.md", "summary.json",
                 "accuracy_vs_throughput.png", "min_accuracy_vs_throughput.png"):  # fmt: skip
        assert (quick / name).stat().st_size > 0, name
    summary = json.loads((quick / "summary.json").read_text())
    assert summary["clips"][0]["encoding"] and summary["versions"]["torch"]


def test_quick_writes_phases_and_placement(quick: Path) -> None:
    phases = read_rows(quick / "phases.csv")
    assert set(phases[0]) == {"scheme", "fusion", "interval", "phase", "miou", "frames"}
    for n in (2, 4):  # every phase of every interval is scored
        got = {int(r["phase"]) for r in phases if r["interval"] == str(n)}
        assert got == set(range(n))
    rows = read_rows(quick / "placement.csv")
    assert {r["placement"] for r in rows} == {"fixed", "adaptive", "adaptive-lean"}
    for r in rows:
        assert int(r["keyframes"]) <= int(r["budget"])


def test_quick_rows_follow_the_protocol(quick: Path) -> None:
    rows = read_rows(quick / "results.csv")
    assert COLUMNS <= set(rows[0])
    per_frame = [r for r in rows if r["scheme"] == "per-frame"]
    assert len(per_frame) == 1 and per_frame[0]["interval"] == "1"
    assert float(per_frame[0]["speedup"]) == 1.0
    base = float(per_frame[0]["miou_avg"])
    schemes = {(r["scheme"], r["fusion"]) for r in rows} - {("per-frame", "")}
    assert {s for s, _ in schemes} == set(SCHEMES) - {"per-frame"}  # every registered scheme
    for r in rows:
        assert float(r["miou_min"]) <= float(r["miou_avg"]) + 1e-6
        if r["interval"] == "1":  # every scheme at k = 1 is per-frame
            assert float(r["miou_avg"]) == base
        if r["scheme"] != "per-frame" and int(r["interval"]) >= 2:
            assert float(r["fps"]) > 0


def test_reference_mode_scores_fidelity(tmp_path: Path) -> None:
    frames, _ = moving_texture_clip("object", 96, 128, 12, seed=2, speed=2.0)
    video = tmp_path / "mine.mp4"
    encode_video(frames, video, options={"crf": "18", **X264_ONE_REF})
    out = tmp_path / "ref"
    args = ["benchmark", str(video), "--reference", "per-frame", "-o", str(out), "--model",
            "enet_lite", "--weights", "none", "--intervals", "1,3", "--no-throughput",
            "--schemes", "per-frame,prop-bmv"]  # fmt: skip
    assert main(args) == 0
    rows = read_rows(out / "results.csv")
    assert float(rows[0]["miou_avg"]) == 100.0  # per-frame against itself
    assert "NOT accuracy" in json.loads((out / "summary.json").read_text())["measures"]


def test_bad_arguments_are_one_line_errors(tmp_path: Path, capsys) -> None:
    assert main(["benchmark", "-o", str(tmp_path)]) != 0
    assert main(["benchmark", "--dataset", "camvid", "-o", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert all(line.startswith("bmvseg benchmark: error:") for line in err)


def test_cityscapes_sequence_layout(tmp_path: Path) -> None:
    """leftImg8bit_sequence + gtFine: each snippet's 20th frame is scored around its keyframes."""
    from PIL import Image

    from bmvseg.models.checkpoint import save_checkpoint
    from bmvseg.models.enet import build_enet_lite

    root, split = tmp_path / "cs", "val"
    snippets = [("aachen", "000001", 19), ("bremen", "000007", 119)]
    for i, (city, seq, labelled) in enumerate(snippets):
        frames, _ = moving_texture_clip("translate", 64, 96, 30, seed=i, speed=1.5)
        for j, rgb in enumerate(frames):
            name = f"{city}_{seq}_{labelled - 19 + j:06d}_leftImg8bit.png"
            path = root / "leftImg8bit_sequence" / split / city / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path)
        ids = np.random.default_rng(i).choice([0, 7, 8, 11, 21, 23, 26], size=(64, 96))
        gt = root / "gtFine" / split / city / f"{city}_{seq}_{labelled:06d}_gtFine_labelIds.png"
        gt.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids.astype(np.uint8)).save(gt)
        still = root / "leftImg8bit" / split / city / f"{city}_{seq}_{labelled:06d}_leftImg8bit.png"
        still.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(frames[19]).save(still)
    ckpt = tmp_path / "cs19.pt"
    save_checkpoint(ckpt, build_enet_lite(num_classes=19), {"note": "random, for the test"})
    out = tmp_path / "out"
    args = ["benchmark", "--dataset", "cityscapes", "--root", str(root), "-o", str(out),
            "--model", "enet_lite", "--weights", str(ckpt), "--intervals", "1,2,4",
            "--no-throughput", "--schemes", "per-frame,prop-bmv,inter-bmv",
            "--fusions", "avg"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_scored"] == 2 and len(summary["clips"]) == 2
    rows = read_rows(out / "results.csv")
    assert {r["interval"] for r in rows if r["scheme"] == "inter-bmv"} == {"1", "2", "4"}
