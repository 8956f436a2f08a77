"""Hugging Face SegFormer cut into features + task: each split equals transformers' own logits."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip(
    "transformers", reason="transformers is an optional extra (bmvseg[transformers])"
)

from bmvseg.cli.main import main  # noqa: E402
from bmvseg.data.classes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE  # noqa: E402
from bmvseg.data.textures import moving_texture_clip  # noqa: E402
from bmvseg.errors import BmvsegError  # noqa: E402
from bmvseg.models.registry import available_models, build_model  # noqa: E402
from bmvseg.run.iterate import segment  # noqa: E402
from bmvseg.video.encode import X264_ONE_REF, encode_video  # noqa: E402

SIZE = (61, 83)  # not a multiple of any stride


def _tiny_config(num_labels: int, names: tuple[str, ...] | None = None):
    names = names or tuple(f"thing{i}" for i in range(num_labels))
    return transformers.SegformerConfig(
        depths=[1, 1, 1, 1],
        hidden_sizes=[8, 16, 24, 32],
        num_attention_heads=[1, 1, 2, 2],
        sr_ratios=[8, 4, 2, 1],
        decoder_hidden_size=16,
        num_labels=num_labels,
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
    )


def _save(path: Path, config, processor: dict | None = None) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    hf = transformers.SegformerForSemanticSegmentation(config).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics in the decoder
        hf.decode_head.batch_norm.running_mean.uniform_(-0.3, 0.3)
        hf.decode_head.batch_norm.running_var.uniform_(0.5, 2.0)
    hf.save_pretrained(path)
    if processor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(processor))
    return path, hf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    processor = {
        "image_processor_type": "SegformerImageProcessor",
        "image_mean": [0.5, 0.4, 0.3],
        "image_std": [0.2, 0.25, 0.3],
        "rescale_factor": 1 / 255,
        "do_rescale": True,
        "do_normalize": True,
    }
    return _save(tmp_path_factory.mktemp("segformer") / "tiny", _tiny_config(5), processor)


@pytest.mark.parametrize(
    ("split", "strides"), [("context", (4,)), ("backbone", (4, 8, 16, 32)), (None, (4,))]
)
def test_each_split_equals_transformers_logits(tiny, split, strides):
    path, hf = tiny
    model = build_model("segformer", weights=str(path), split=split)
    assert model.strides == strides and not model.training
    x = torch.randn(2, 3, *SIZE)
    with torch.inference_mode():
        feats = model.features(x)
        ref = hf(pixel_values=x).logits
        low = model.logits(feats)
        out = model.task(feats, SIZE)
    for f, s in zip(feats, strides, strict=True):  # each tensor at its own stride, rounded up
        assert f.shape[-2:] == (-(-SIZE[0] // s), -(-SIZE[1] // s))
    assert model.has_lowres_logits
    torch.testing.assert_close(low, ref, rtol=1e-5, atol=1e-5)
    up = F.interpolate(ref, size=SIZE, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, up, rtol=1e-5, atol=1e-5)


def test_labels_and_normalisation_come_from_the_checkpoint(tiny):
    path, _ = tiny
    model = build_model("segformer", weights=path)
    assert model.class_names == tuple(f"thing{i}" for i in range(5)) and model.num_classes == 5
    assert model.palette.shape == (5, 3)
    assert model.mean == (0.5, 0.4, 0.3) and model.std == (0.2, 0.25, 0.3)
    rgb = np.full((4, 6, 3), (255, 0, 51), np.uint8)
    x = model.preprocess(rgb)
    expect = torch.tensor([(1 - 0.5) / 0.2, (0 - 0.4) / 0.25, (0.2 - 0.3) / 0.3])
    torch.testing.assert_close(x[0, :, 0, 0], expect)


def test_cityscapes_labels_get_cityscapes_palette_and_void_is_dropped(tmp_path):
    names = (*(c.title() if i % 2 else c for i, c in enumerate(CITYSCAPES_CLASSES)), "void")
    path, hf = _save(tmp_path / "cs", _tiny_config(20, names))
    model = build_model("segformer", weights=path)
    assert model.num_classes == 20
    from bmvseg.models.segformer import build_segformer

    model = build_segformer(weights=path, void_index=19)
    assert model.num_classes == 19 and tuple(n.lower() for n in model.class_names) == (
        CITYSCAPES_CLASSES
    )
    np.testing.assert_array_equal(model.palette, CITYSCAPES_PALETTE)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        hf.decode_head.classifier.bias[19] = 1e4  # void would win everywhere
        out = model(x)
        ref = hf(pixel_values=x).logits
    assert out.shape[1] == 19 and ref.argmax(1).eq(19).all()
    assert int(out.argmax(1).max()) < 19
    torch.testing.assert_close(out, F.interpolate(ref[:, :19], size=(32, 48), mode="bilinear"))


def test_refusals_are_one_line_errors(tmp_path):
    assert "segformer" in available_models()
    with pytest.raises(BmvsegError, match="segformer needs weights"):
        build_model("segformer")
    with pytest.raises(BmvsegError, match="cannot read a transformers config from .*nowhere"):
        build_model("segformer", weights=str(tmp_path / "nowhere"))
    other = tmp_path / "dpt"
    transformers.DPTConfig().save_pretrained(other)
    with pytest.raises(BmvsegError, match="model_type is 'dpt'.*cuts only SegFormer.*split_module"):
        build_model("segformer", weights=other)
    with pytest.raises(BmvsegError, match="split 'middle' for model 'segformer'"):
        build_model("segformer", weights=other, split="middle")


def _corrupt(src: Path, dst: Path, name: str, **changes) -> Path:
    """A copy of checkpoint ``src`` with JSON file ``name`` changed (a value None: removed)."""
    shutil.copytree(src, dst)
    data = json.loads((dst / name).read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    (dst / name).write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id2label": ["a", "b", "c", "d", "e"]}, "id2label must be an object"),
        ({"id2label": "thing0"}, "id2label must be an object"),
        ({"id2label": {"0": "a", "7": "b"}}, "id2label keys must be the ids 0..1"),
        ({"num_labels": "5"}, "num_labels must be an integer 1..256, not '5'"),
        ({"num_labels": 10**9, "id2label": None}, "num_labels must be an integer 1..256"),
        ({"num_labels": -3, "id2label": None}, "num_labels must be an integer"),
        ({"num_labels": None, "id2label": None}, "num_labels is missing"),
        (
            {"num_labels": 7, "id2label": None},
            "num_labels says 7 but the weights' decode_head.classifier.weight has 5",
        ),
        ({"num_labels": 4}, "num_labels is 4 but id2label names 5 classes"),
        ({"hidden_sizes": [8, 16, 24, 40]}, "hidden_sizes says 40 but the weights'"),
        ({"hidden_sizes": [8, 16]}, "hidden_sizes has 2 entries but num_encoder_blocks is 4"),
        ({"hidden_sizes": "big"}, "hidden_sizes must be a list of positive integers"),
        ({"decoder_hidden_size": 32}, "decoder_hidden_size says 32 but the weights'"),
        ({"decoder_hidden_size": 0}, "decoder_hidden_size must be a positive integer"),
        ({"model_type": "bert"}, "model_type is 'bert', not 'segformer'"),
        ({"model_type": None}, "model_type is None"),
        ({"strides": [4, "2", 2, 2]}, "strides must be a list of positive integers"),
    ],
)
def test_odd_configs_are_one_line_errors_naming_the_field(tiny, tmp_path, changes, field):
    bad = _corrupt(tiny[0], tmp_path / "odd", "config.json", **changes)
    with pytest.raises(BmvsegError) as err:
        build_model("segformer", weights=bad)
    msg = str(err.value)
    assert field in msg and "config.json" in msg and "\n" not in msg


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"image_mean": ["0.5", "0.4", "0.3"]}, "image_mean must be 3 numbers"),
        ({"image_mean": [0.5, 0.4]}, "image_mean must be 3 numbers"),
        ({"image_std": [0.0, 0.0, 0.0]}, "image_std must be > 0 for every channel"),
        ({"image_std": [0.2, -1, 0.3]}, "image_std must be > 0"),
        ({"rescale_factor": "1/255"}, "rescale_factor must be a number > 0"),
        ({"do_normalize": "yes"}, "do_normalize must be true or false"),
    ],
)
def test_odd_processor_configs_are_one_line_errors_naming_the_field(tiny, tmp_path, changes, field):
    bad = _corrupt(tiny[0], tmp_path / "odd", "preprocessor_config.json", **changes)
    with pytest.raises(BmvsegError) as err:
        build_model("segformer", weights=bad)
    assert field in str(err.value) and "preprocessor_config.json" in str(err.value)


def test_one_number_for_all_channels_is_accepted(tiny, tmp_path):
    ok = _corrupt(tiny[0], tmp_path / "ok", "preprocessor_config.json", image_mean=0.5)
    assert build_model("segformer", weights=ok).mean == (0.5, 0.5, 0.5)


def test_a_missing_folder_without_dot_slash_says_no_such_directory_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    for name in ("my_segformer", "models/segformer-b0", "a/b/c"):
        t = time.monotonic()
        with pytest.raises(BmvsegError, match="no such directory"):
            build_model("segformer", weights=name)
        assert time.monotonic() - t < 5, name


def test_an_uncached_hub_id_offline_says_so_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    t = time.monotonic()
    with pytest.raises(BmvsegError, match="no such directory, not in the Hugging Face cache"):
        build_model("segformer", weights="nobody-here/segformer-none")
    assert time.monotonic() - t < 5


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    frames = moving_texture_clip("object", 48, 64, 12, seed=3, speed=1.5)[0]
    encode_video(frames, path, options=X264_ONE_REF)
    return path


@pytest.mark.parametrize("split", ["context", "backbone"])
def test_engine_runs_segformer_splits(tiny, video, split):
    path, _ = tiny
    model = build_model("segformer", weights=path, split=split)
    per = [r.labels for r in segment(video, model=model, scheme="per-frame")]
    k1 = [r.labels for r in segment(video, model=model, scheme="inter-bmv", interval=1)]
    assert len(per) == 12 and all(np.array_equal(a, b) for a, b in zip(per, k1, strict=True))
    k5 = list(segment(video, model=model, scheme="inter-bmv", interval=5))
    assert [r.index for r in k5] == list(range(12))
    assert sum(r.keyframe for r in k5) == 4  # 0, 5, 10 and the last frame
    assert all(r.labels.shape == (48, 64) and r.labels.max() < 5 for r in k5)


def test_cli_segment_with_segformer_directory(tiny, video, tmp_path, capsys):
    path, _ = tiny
    out = {}
    for name, extra in (("per", ["--scheme", "per-frame"]), ("k1", ["-k", "1"]), ("k5", [])):
        out[name] = tmp_path / name
        argv = ["segment", str(video), "-o", str(out[name]), "--model", "segformer"]
        assert main([*argv, "--weights", str(path), *extra]) == 0, capsys.readouterr().err
    labels = {n: sorted((d / "labels").iterdir()) for n, d in out.items()}
    assert len(labels["per"]) == len(labels["k1"]) == len(labels["k5"]) == 12
    for a, b in zip(labels["per"], labels["k1"], strict=True):
        assert a.read_bytes() == b.read_bytes()
