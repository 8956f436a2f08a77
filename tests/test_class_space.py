"""Class space: a task network that is (or begins with) one per-pixel affine map lets the
engine warp and fuse the logits (or that narrower map) instead of the features, with the labels
of the feature-space path except at near-ties (counted).  ``keep_features`` keeps a run in
feature space: the reference here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bmvseg.data.textures import moving_texture_clip
from bmvseg.models.class_space import affine_task, task_cut
from bmvseg.models.enet import build_enet_lite
from bmvseg.models.split import split_module
from bmvseg.schemes.engine import Engine, EngineConfig
from bmvseg.video.encode import encode_video
from bmvseg.video.reader import VideoReader

H, W = 96, 128


class _Net(nn.Module):
    """A small segmentation net: stride-4 body, then ``head`` at stride 4, then the upsample."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 12, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(12, 12, 3, stride=2, padding=1), nn.ReLU())  # fmt: skip
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _split(head: nn.Module):
    torch.manual_seed(1)
    return split_module(_Net(head), "body")


def _segformer(split: str = "context", **kw):
    transformers = pytest.importorskip("transformers")
    from bmvseg.models.segformer import SegformerSeg

    torch.manual_seed(2)
    cfg = transformers.SegformerConfig(hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                                       num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=32,
                                       num_labels=7)  # fmt: skip
    return SegformerSeg(transformers.SegformerForSemanticSegmentation(cfg), split, **kw)


def _affine_heads() -> dict[str, nn.Module]:
    return {
        "1x1": nn.Conv2d(12, 5, 1),
        "dropout+bn+1x1": nn.Sequential(nn.Dropout2d(0.3), nn.BatchNorm2d(12), nn.Conv2d(12, 5, 1)),
    }


def _nonaffine_heads() -> dict[str, nn.Module]:
    return {
        "3x3": nn.Conv2d(12, 5, 3, padding=1),
        "relu": nn.Sequential(nn.Conv2d(12, 12, 1), nn.ReLU(), nn.Conv2d(12, 5, 1)),
        "strided": nn.Conv2d(12, 5, 1, stride=2),
    }


def _like(model) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        return model.features(torch.zeros(1, 3, H, W))


@pytest.mark.parametrize("head", list(_affine_heads()))
def test_split_module_cut_before_affine_head_is_affine(head) -> None:
    model = _split(_affine_heads()[head]).eval()
    assert affine_task(model, _like(model))


@pytest.mark.parametrize("head", list(_nonaffine_heads()))
def test_non_affine_heads_are_refused(head) -> None:
    model = _split(_nonaffine_heads()[head]).eval()
    assert not affine_task(model, _like(model))


def test_segformer_context_split_is_affine_and_backbone_is_not() -> None:
    ctx = _segformer()
    assert affine_task(ctx, _like(ctx))
    assert affine_task(_segformer(void_index=0), _like(ctx))  # dropping an output: a selection
    back = _segformer("backbone")
    assert not affine_task(back, _like(back))
    merged = _segformer(class_map=(0, 0, 1, 2, 3, 4, 5))  # a max over two outputs
    assert not affine_task(merged, _like(ctx))


def test_enet_lite_task_is_cut_after_its_affine_part() -> None:
    torch.manual_seed(0)
    model = build_enet_lite().eval()  # its task has a PReLU between two 1x1 convolutions
    like = _like(model)
    assert not affine_task(model, like)
    cut = task_cut(model, like)
    assert cut is not None and cut.channels == 32 and cut.rest is not None
    f = torch.randn(1, 64, 7, 9)
    with torch.inference_mode():
        torch.testing.assert_close(cut.logits(cut.carry(f)), model.logits((f,)))


def test_no_cut_where_nothing_is_narrower() -> None:
    model = _split(_nonaffine_heads()["3x3"]).eval()
    assert task_cut(model, _like(model)) is None
    wide = _split(nn.Conv2d(12, 40, 1)).eval()  # affine, but wider than the features
    assert affine_task(wide, _like(wide)) and task_cut(wide, _like(wide)) is None


def test_training_mode_is_not_affine() -> None:
    model = _split(_affine_heads()["dropout+bn+1x1"])
    like = _like(model)
    assert affine_task(model.eval(), like)
    assert not affine_task(model.train(), like)  # random dropout, batch statistics


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    frames, _ = moving_texture_clip("object", H, W, 14, seed=5, speed=2.0)
    path = tmp_path_factory.mktemp("cls") / "moving.mp4"
    encode_video(frames, path, options={"crf": "14", "preset": "medium"})
    return path


def _run(model, path: Path, **kw) -> tuple[Engine, list]:
    engine = Engine(model, EngineConfig(keep_logits=True, **kw))
    with VideoReader(path) as reader:
        return engine, list(engine.run(reader.frames()))


def _models() -> dict:
    return {"segformer": _segformer, "split_module": lambda: _split(_affine_heads()["1x1"]),
            "enet_lite": lambda: build_enet_lite().eval(),
            "split_3x3": lambda: _split(_nonaffine_heads()["3x3"])}  # fmt: skip


@pytest.mark.parametrize("scheme", ["inter-bmv", "prop-bmv", "inter-flow"])
@pytest.mark.parametrize("name", list(_models()))
def test_class_space_equals_feature_space(clip, name, scheme) -> None:
    torch.manual_seed(0)
    model = _models()[name]()
    engine, ours = _run(model, clip, scheme=scheme, interval=4)
    _, ref = _run(model, clip, scheme=scheme, interval=4, keep_features=True)
    assert (engine.task_cut(_like(model)) is None) == (name == "split_3x3")
    ties = 0
    for a, b in zip(ours, ref, strict=True):
        assert a.index == b.index and a.keyframe == b.keyframe
        scale = float(b.logits.abs().amax())
        torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=1e-4 * scale)
        differ = a.labels != b.labels
        if differ.any():  # only where the reference's two best classes are as close
            top2 = b.logits[0].topk(2, 0).values
            gap = (top2[0] - top2[1]).numpy()
            assert (gap[differ] <= 2e-4 * scale).all(), (name, a.index)
            ties += int(differ.sum())
        if name == "split_3x3":  # no class space: the very same computation
            assert np.array_equal(a.labels, b.labels) and torch.equal(a.logits, b.logits)
    assert ties <= 1e-3 * len(ours) * H * W, ties


@pytest.mark.parametrize("name", ["segformer", "split_module"])
def test_interval_one_equals_per_frame_in_class_space(clip, name) -> None:
    model = _models()[name]()
    _, ref = _run(model, clip, scheme="per-frame")
    _, out = _run(model, clip, scheme="inter-bmv", interval=1)
    for a, b in zip(ref, out, strict=True):
        assert np.array_equal(a.labels, b.labels)


def test_max_fusion_stays_in_feature_space(clip) -> None:
    model = _models()["split_module"]()
    _, ours = _run(model, clip, scheme="inter-bmv", interval=4, fusion="max")
    _, ref = _run(model, clip, scheme="inter-bmv", interval=4, fusion="max", keep_features=True)
    for a, b in zip(ours, ref, strict=True):  # bit for bit: both fused the features
        assert torch.equal(a.logits, b.logits)


def test_the_affine_check_does_not_load_the_compiler_stack() -> None:
    """The check runs inside the first run of a process: recording the task must not import
    torch's compiler (``make_fx`` did: 1-4 s before the first intermediate frame)."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from bmvseg.models.enet import build_enet_lite\n"
        "from bmvseg.models.class_space import task_cut\n"
        "m = build_enet_lite(num_classes=11).eval()\n"
        "with torch.inference_mode():\n"
        "    cut = task_cut(m, m.features(torch.zeros(1, 3, 64, 96)))\n"
        "assert cut is not None and cut.channels < 64, cut\n"
        "print(sorted(k for k in sys.modules if k.startswith(('torch._dynamo', 'sympy'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
