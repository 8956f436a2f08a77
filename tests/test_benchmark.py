"""The benchmark command end to end on generated data (the CI-sized ``--quick`` mode)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.models.registry import default_weights_path
from bmvseg.video.encode import X264_ONE_REF, encode_video

COLUMNS = {"scheme", "fusion", "interval", "miou_avg", "miou_min", "fps", "speedup"}


def read_rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quick")
    weights = "default" if default_weights_path("synthetic_demo") else "none"
    assert main(["benchmark", "--quick", "-o", str(out), "--weights", weights]) == 0
    return out


def test_quick_writes_every_output(quick: Path) -> None:
    for name in ("results.csv", "table.md", "fusion.md", "breakdown.md", "summary.json",
                 "accuracy_vs_throughput.png", "min_accuracy_vs_throughput.png"):  # fmt: skip
        assert (quick / name).stat().st_size > 0, name
    summary = json.loads((quick / "summary.json").read_text())
    assert summary["clips"][0]["encoding"] and summary["versions"]["torch"]


def test_quick_rows_follow_the_protocol(quick: Path) -> None:
    rows = read_rows(quick / "results.csv")
    assert COLUMNS <= set(rows[0])
    per_frame = [r for r in rows if r["scheme"] == "per-frame"]
    assert len(per_frame) == 1 and per_frame[0]["interval"] == "1"
    assert float(per_frame[0]["speedup"]) == 1.0
    base = float(per_frame[0]["miou_avg"])
    schemes = {(r["scheme"], r["fusion"]) for r in rows} - {("per-frame", "")}
    assert {s for s, _ in schemes} == {"prop-flow", "prop-bmv", "inter-bmv"}
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
