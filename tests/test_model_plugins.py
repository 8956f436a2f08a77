"""Models from outside the package: ``model.py:function`` files and ``bmvseg.models`` entry
points; unknown names refused with what exists; per-model files beside the weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import bmvseg.models
from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import BmvsegError
from bmvseg.models import registry
from bmvseg.models.checkpoint import save_checkpoint
from bmvseg.models.registry import build_model, fusion_weights_for, fusion_weights_home
from bmvseg.video.encode import X264_ONE_REF, encode_video

MODEL_PY = """
import torch
from torch import nn

import bmvseg.models


class Net(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.head = nn.Conv2d(8, n, 1)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def build():
    torch.manual_seed(1)
    return bmvseg.models.split_module(Net(4), "body", class_names=["a", "b", "c", "d"])


def build_split(*, split=None, weights=None):
    model = build()
    model.asked = (split, weights)
    return model


def not_a_model():
    return Net(4)


def broken():
    return 1 / 0
"""


@pytest.fixture
def model_py(tmp_path) -> Path:
    path = tmp_path / "my_model.py"
    path.write_text(MODEL_PY)
    return path


def test_a_file_of_the_users_builds_a_model(model_py, tmp_path):
    model = build_model(f"{model_py}:build")
    assert isinstance(model, bmvseg.models.SegmentationModel) and model.strides == (4,)
    assert model.class_names == ("a", "b", "c", "d") and not model.training
    seen = build_model(f"{model_py}:build_split", split="context", weights="w").asked
    assert seen == ("context", "w")  # keywords the builder takes are passed on
    # a builder without ``weights`` builds its own; a checkpoint path is loaded into it
    trained = build_model(f"{model_py}:build")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.5)
    ckpt = tmp_path / "trained.pt"
    save_checkpoint(ckpt, trained, {})
    loaded = build_model(f"{model_py}:build", weights=ckpt)
    x = torch.randn(1, 3, 32, 48)
    with torch.inference_mode():
        assert not torch.allclose(model(x), trained(x))
        torch.testing.assert_close(loaded(x), trained(x), rtol=1e-2, atol=1e-2)  # fp16 file


def test_file_errors_are_one_line(model_py, tmp_path):
    with pytest.raises(BmvsegError, match="model file not found: .*nope.py"):
        build_model(f"{tmp_path / 'nope.py'}:build")
    with pytest.raises(BmvsegError, match="has no function 'bild' \\(it defines: .*build"):
        build_model(f"{model_py}:bild")
    with pytest.raises(BmvsegError, match="returned Net, not a SegmentationModel.*split_module"):
        build_model(f"{model_py}:not_a_model")
    line = MODEL_PY.splitlines().index("    return 1 / 0") + 1
    with pytest.raises(BmvsegError, match=rf"failed \(my_model.py line {line}\): ZeroDivision"):
        build_model(f"{model_py}:broken")
    with pytest.raises(BmvsegError, match="does not take split"):
        build_model(f"{model_py}:build", split="backbone")
    bad = tmp_path / "bad_model.py"
    bad.write_text("import torch\n\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(BmvsegError, match=r"failed to import \(bad_model.py line 3\): Runtime"):
        build_model(f"{bad}:build")


def test_unknown_names_list_what_exists():
    with pytest.raises(BmvsegError, match="unknown model 'nope'; available: .*enet_lite.*"
                       "segformer.*path/to/model.py:function"):  # fmt: skip
        build_model("nope")


ENTRY_POINTS = """[bmvseg.models]
tinynet = tiny_bmvseg_plugin:build
"""


def test_installed_packages_announce_models_by_entry_point(tmp_path, model_py, monkeypatch):
    site = tmp_path / "site"
    dist = site / "tiny_bmvseg_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-bmvseg-plugin\nVersion: 1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "tiny_bmvseg_plugin.py").write_text(model_py.read_text())
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_BUILTINS_LOADED", False)
    assert "tinynet" in registry.available_models()
    model = build_model("tinynet")
    assert model.class_names == ("a", "b", "c", "d")
    with pytest.raises(BmvsegError, match="'tinynet'.*does not take num_classes"):
        build_model("tinynet", num_classes=3)


def test_fusion_weights_live_beside_the_model(tmp_path, model_py):
    weights = tmp_path / "city.pt"
    save_checkpoint(weights, build_model(f"{model_py}:build"), {})
    assert fusion_weights_home("enet_lite", weights) == tmp_path / "city.fusion.pt"
    assert fusion_weights_for("enet_lite", weights) is None  # not trained yet
    (tmp_path / "city.fusion.pt").write_bytes(b"x")
    assert fusion_weights_for("enet_lite", weights) == tmp_path / "city.fusion.pt"
    hf_dir = tmp_path / "segformer-b0"
    hf_dir.mkdir()
    assert fusion_weights_home("segformer", hf_dir) == tmp_path / "segformer-b0.fusion.pt"
    assert fusion_weights_home(f"{model_py}:build") == tmp_path / "my_model.fusion.pt"
    assert fusion_weights_home("segformer", "nvidia/segformer-b0-finetuned-ade-512-512") is None
    assert fusion_weights_home("enet_lite", None) is None
    shipped = registry.default_weights_path("enet_lite")
    if shipped is not None:
        assert fusion_weights_home("enet_lite") == registry.WEIGHTS_DIR / "enet_lite.fusion.pt"


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    frames = moving_texture_clip("object", 48, 64, 10, seed=2, speed=1.5)[0]
    encode_video(frames, path, options=X264_ONE_REF)
    return path


def test_cli_segment_and_benchmark_take_a_model_file(model_py, video, tmp_path, capsys):
    spec = f"{model_py}:build"
    out = tmp_path / "seg"
    assert main(["segment", str(video), "-o", str(out), "--model", spec, "-k", "5"]) == 0, (
        capsys.readouterr().err
    )
    labels = sorted((out / "labels").iterdir())
    assert len(labels) == 10
    bench = tmp_path / "bench"
    argv = ["benchmark", str(video), "--reference", "per-frame", "-o", str(bench),
            "--model", spec, "--intervals", "1,3", "--schemes", "per-frame,inter-bmv",
            "--fusions", "avg", "--no-throughput"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert "inter-bmv" in (bench / "summary.json").read_text()
