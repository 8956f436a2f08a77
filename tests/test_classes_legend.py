"""Classes travel with the labels: ``classes.json`` and the summary's ``classes``, the overlay's
legend strip, ``--palette``, and the reports' classes and warnings."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from torch import nn

from bmvseg.cli.main import main
from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE, ClassSet, read_palette
from bmvseg.data.legend import MAX_ROWS, Legend
from bmvseg.data.synthetic.clip import render_clip, write_clip
from bmvseg.distributed.job import run_job
from bmvseg.errors import BmvsegError
from bmvseg.evaluation import report
from bmvseg.evaluation.sweep import Variant
from bmvseg.evaluation.throughput import Throughput, baseline_warning
from bmvseg.models.registry import build_model
from bmvseg.models.split import split_module
from bmvseg.output import LAYOUTS, RECORD
from bmvseg.run.options import RunOptions
from bmvseg.run.to_dir import segment_to_dir
from bmvseg.schemes.registry import reference_scheme
from bmvseg.video.encode import X264_ONE_REF, encode_video

W, H = 320, 240
TOLERANCE = 40  # per channel: yuv420 and the overlay's CRF move a flat swatch this little


@pytest.fixture(scope="module")
def street(tmp_path_factory) -> Path:
    """A short generated street clip: many classes in every frame."""
    rendered = render_clip(200007, H, W, 6)
    return write_clip(rendered, tmp_path_factory.mktemp("street"), flow=False,
                      codec_options=X264_ONE_REF)  # fmt: skip


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def _labels(out: Path, i: int) -> np.ndarray:
    return cv2.imread(str(out / "labels" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED)


def _colour_pixels(region: np.ndarray, colour) -> int:
    diff = np.abs(region.astype(int) - np.asarray(colour, int)).max(-1)
    return int((diff <= TOLERANCE).sum())


def _strip_shows(out: Path, classes: dict) -> None:
    """Every decoded overlay frame's legend strip holds a swatch of each class its labels show."""
    palette = np.array([c["color"] for c in classes["classes"]], np.uint8)
    legend = Legend([c["name"] for c in classes["classes"]], palette)
    frames = _frames(out / "overlay.mp4")
    assert frames
    for i, frame in enumerate(frames):
        present = legend.present(_labels(out, i))
        assert present
        strip = frame[-len(legend.strip(present, frame.shape[1])):]
        for k in present:
            assert _colour_pixels(strip, palette[k]) >= 20, (i, classes["classes"][k])
        assert (strip.max(-1) < 40).mean() > 0.5  # a dark strip: the swatches stand out


def _check_classes(out: Path, model) -> dict:
    expected = ClassSet.of(model).record()
    got = json.loads((out / "classes.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert got == expected == summary["classes"]
    assert [c["name"] for c in got["classes"]] == list(model.class_names)
    assert got["void_id"] == 255 and summary["model_split"] == model.split
    assert "classes.json" in json.loads((out / RECORD).read_text())["files"]
    return got


def test_classes_json_of_the_shipped_model_and_a_legend_in_the_overlay(street, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(street), "-o", str(out), "-k", "3"]) == 0
    got = _check_classes(out, build_model("enet_lite"))
    assert [c["name"] for c in got["classes"]] == list(CAMVID_CLASSES)
    _strip_shows(out, got)


def test_a_job_video_carries_classes_and_legend_too(street, tmp_path):
    out = tmp_path / "job"
    result = run_job([street], out, options=RunOptions(interval=2), chunk_frames=3)
    assert [v.state for v in result.videos] == ["complete"]
    got = _check_classes(out, build_model("enet_lite"))
    summary = json.loads((out / "summary.json").read_text())
    assert all("classes" not in c for c in summary["chunking"]["chunks"])  # said once
    _strip_shows(out, got)


def test_palette_changes_the_overlay_and_is_recorded(street, tmp_path):
    out = tmp_path / "out"
    pal = tmp_path / "pal.json"
    pal.write_text(json.dumps({"road": [255, 0, 0], "1": [0, 255, 0]}))
    assert main(["segment", str(street), "-o", str(out), "--palette", str(pal)]) == 0
    got = json.loads((out / "classes.json").read_text())
    colours = {c["name"]: c["color"] for c in got["classes"]}
    assert colours["road"] == [255, 0, 0] and colours["building"] == [0, 255, 0]
    assert colours["sky"] == CAMVID_PALETTE[0].tolist()  # the rest keep the model's
    _strip_shows(out, got)
    # The labels are the run's labels whatever the colours: the palette is no part of the identity.
    assert "palette" not in json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"roadd": [1, 2, 3]}', "unknown class 'roadd'"),
        ('{"11": [1, 2, 3]}', "unknown class '11'"),
        ('{"road": [1, 2]}', "colour of 'road' must be [r, g, b]"),
        ('{"road": [1, 2, 256]}', "integers 0..255"),
        ('{"road": "red"}', "must be [r, g, b]"),
        ('{"road": [1, 2, 3], "3": [1, 2, 3]}', "given twice"),
        ('[1, 2, 3]', "must be a JSON object"),
        ("{road", "is not JSON"),
    ],
)
def test_a_bad_palette_is_one_line_before_any_folder(street, tmp_path, capsys, content, message):
    pal = tmp_path / "pal.json"
    pal.write_text(content)
    out = tmp_path / "out"
    assert main(["segment", str(street), "-o", str(out), "--palette", str(pal)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_missing_palette_file_is_one_line():
    with pytest.raises(BmvsegError, match="cannot read palette"):
        read_palette("no/such/palette.json", CAMVID_CLASSES, CAMVID_PALETTE)


def _tiny_segformer(path: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    names = ("ground", "wall", "person")
    config = transformers.SegformerConfig(
        depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 2, 2],
        sr_ratios=[8, 4, 2, 1], decoder_hidden_size=16, num_labels=len(names),
        id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
    )  # fmt: skip
    torch.manual_seed(0)
    transformers.SegformerForSemanticSegmentation(config).eval().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (60, 84, 3), np.uint8)
    frames = [np.roll(base, 2 * t, axis=1) for t in range(5)]
    path = tmp_path_factory.mktemp("small") / "clip.mp4"
    encode_video(frames, path, options=X264_ONE_REF)
    return path


def test_classes_json_of_a_segformer_directory(small_video, tmp_path):
    weights = _tiny_segformer(tmp_path / "segformer")
    out = tmp_path / "out"
    assert main(["segment", str(small_video), "-o", str(out), "--model", "segformer",
                 "--weights", str(weights), "--no-overlay"]) == 0  # fmt: skip
    got = _check_classes(out, build_model("segformer", weights=str(weights)))
    assert [c["name"] for c in got["classes"]] == ["ground", "wall", "person"]


def test_classes_json_and_cut_of_a_split_module_model(small_video, tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(), nn.Conv2d(8, 4, 1), nn.Upsample(scale_factor=2, mode="bilinear"),
    )  # fmt: skip
    model = split_module(net, "1", void_index=0, class_names=["lane", "kerb", "car"],
                         palette=[[10, 20, 30], [40, 50, 60], [70, 80, 90]])  # fmt: skip
    out = tmp_path / "out"
    segment_to_dir(small_video, out, RunOptions(model=model, interval=2))
    got = _check_classes(out, model)
    assert got["void_output"] == 0 and got["classes"][2] == {
        "id": 2, "name": "car", "color": [70, 80, 90]}  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_split"] == model.split == "1"


def test_every_output_kind_that_names_classes_owns_classes_json():
    for kind in ("segment", "chunked", "benchmark", "demo"):
        assert "classes.json" in LAYOUTS[kind].files, kind


def test_legend_lists_what_is_present_and_fits_at_640():
    legend = Legend(CAMVID_CLASSES, CAMVID_PALETTE)
    labels = np.zeros((360, 640), np.uint8)
    labels[:100] = 3
    labels[200:, 300:] = 8
    assert legend.present(labels) == (0, 3, 8)
    one = legend.strip((0, 3, 8), 640)
    every = legend.strip(tuple(range(len(CAMVID_CLASSES))), 640)
    assert one.shape[1] == every.shape[1] == 640 and len(one) < len(every) <= 360 // 6
    assert legend.strip((0, 3, 8), 640) is one  # cached
    many = Legend([f"class number {i}" for i in range(150)], np.zeros((150, 3), np.uint8))
    strip = many.strip(tuple(range(150)), 640)  # cannot fit: at most MAX_ROWS rows, "+N more"
    assert len(strip) <= MAX_ROWS * len(one)


def _throughput(fps: float) -> Throughput:
    return Throughput(Variant(reference_scheme()), 1, 100, 100 / fps, {})


def test_disagreeing_baseline_passes_warn_in_report_and_plot(tmp_path):
    assert baseline_warning([_throughput(20.0), _throughput(21.0)]) is None
    warning = baseline_warning([_throughput(20.0), _throughput(30.0)])
    assert warning and "40%" in warning and "busy" in warning
    assert warning in report.warning_md(warning)
    table = [{"scheme": reference_scheme(), "fusion": None, "interval": 1, "miou_avg": 50.0,
              "miou_min": 50.0, "fps": 25.0, "speedup": 1.0}]  # fmt: skip
    quiet, busy = tmp_path / "quiet.png", tmp_path / "busy.png"
    report.plot_tradeoff(table, "miou_avg", quiet, "t")
    report.plot_tradeoff(table, "miou_avg", busy, "t", warning)
    a, b = cv2.imread(str(quiet)), cv2.imread(str(busy))
    red = (b[..., 2] > 200) & (b[..., 1] < 80) & (b[..., 0] < 80)
    assert red[: b.shape[0] // 8].sum() > 50 and not ((a[..., 2] > 200) & (a[..., 1] < 80)).any()


def test_benchmark_without_throughput_prints_no_nan_rows(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--quick", "--no-throughput", "-o", str(out), "--weights", "none",
                 "--schemes", "per-frame,prop-bmv", "--intervals", "1,2"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    table = (out / "table.md").read_text()
    for text in (printed, table, (out / "results.csv").read_text()):
        assert "nan" not in text.lower() and "throughput (fps)" not in text
    assert "fps" not in (out / "results.csv").read_text().splitlines()[0]
    assert "| 3 | road |" in table  # the classes are named
    summary = json.loads((out / "summary.json").read_text())
    assert summary["classes"] == json.loads((out / "classes.json").read_text())
    assert (out / "accuracy_vs_throughput.png").stat().st_size > 0
