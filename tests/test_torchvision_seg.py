"""torchvision segmentation models split into features + task: same output as torchvision's own."""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("torchvision", reason="torchvision is an optional extra (bmvseg[torchvision])")

from torchvision.models import segmentation as tvseg  # noqa: E402

from bmvseg.errors import BmvsegError, CheckpointError  # noqa: E402
from bmvseg.models.checkpoint import save_checkpoint  # noqa: E402
from bmvseg.models.registry import available_models, build_model  # noqa: E402
from bmvseg.models.torchvision_seg import (  # noqa: E402
    SPECS,
    build_torchvision_model,
    resolve_torchvision_weights,
)

TV_ARCHS = [a for a in SPECS if a != "deeplabv3_resnet101_os16"]  # those torchvision builds
SIZE = (97, 129)  # not a multiple of any stride


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _random_tv_model(arch: str, num_classes: int = 5, aux: bool = False) -> torch.nn.Module:
    """torchvision's own model with random weights and non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    kw = {} if arch.startswith("lraspp") else {"aux_loss": aux}
    model = getattr(tvseg, arch)(weights=None, weights_backbone=None, num_classes=num_classes, **kw)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def tv_checkpoints(tmp_path_factory):
    """{arch: (torchvision model, path of its state_dict saved with plain torch.save)}."""
    out = {}
    d = tmp_path_factory.mktemp("tv")
    for arch in TV_ARCHS:
        model = _random_tv_model(arch, aux=arch == "fcn_resnet50")
        path = d / f"{arch}.pth"
        torch.save(model.state_dict(), path)
        out[arch] = (model, path)
    return out


@pytest.mark.parametrize("arch", TV_ARCHS)
def test_split_models_reproduce_torchvision_output(arch, tv_checkpoints):
    tv, path = tv_checkpoints[arch]
    x = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    widths = {}
    with torch.inference_mode():
        want = tv(x)["out"]
        for split in ("backbone", "context"):
            for cl in (False, True):
                model = build_torchvision_model(arch, weights=path, split=split, channels_last=cl)
                assert model.num_classes == 5 and not model.training
                xi = x.contiguous(memory_format=torch.channels_last) if cl else x
                feats = model.features(xi)
                widths[split] = [(f.shape[1], *f.shape[-2:]) for f in feats]
                got = model.task(feats, SIZE)
                assert got.shape == want.shape
                # task = bilinear upsample of the logits at the finest feature stride
                assert model.has_lowres_logits
                assert model.logits(feats).shape[-2:] == feats[0].shape[-2:]
                # channels_last sums in another order: equal up to float rounding of the logits'
                # scale (random deep nets reach |logit| ~ 100), even for torchvision's own model.
                tol = 1e-4 * (float(want.abs().max()) if cl else 1.0)
                torch.testing.assert_close(got, want, atol=tol, rtol=1e-4)
                torch.testing.assert_close(model(xi), got, atol=tol, rtol=1e-4)
    # The point of the context split: thinner tensors to warp, at the same strides.
    assert [w[1:] for w in widths["context"]] == [w[1:] for w in widths["backbone"]]
    assert sum(w[0] for w in widths["context"]) < sum(w[0] for w in widths["backbone"])


@pytest.mark.parametrize("arch", list(SPECS))
def test_feature_strides(arch):
    model = build_torchvision_model(arch, num_classes=3, split="backbone")
    sizes = [(64, 64), (97, 129), (120, 161)] if "mobilenet" in arch else [(33, 47), (97, 129)]
    for h, w in sizes:
        with torch.inference_mode():
            feats = model.features(torch.zeros(1, 3, h, w))
        assert len(feats) == len(model.strides)
        for f, s in zip(feats, model.strides, strict=True):
            assert tuple(f.shape[-2:]) == (math.ceil(h / s), math.ceil(w / s)), (arch, h, w, s)


def test_os16_is_the_paper_configuration(tv_checkpoints, tmp_path):
    """ResNet-101 at stride 16 takes the stride-8 model's weights (same shapes), rates halved."""
    tv = _random_tv_model("deeplabv3_resnet101")
    path = tmp_path / "r101.pth"
    torch.save(tv.state_dict(), path)
    model = build_torchvision_model("deeplabv3_resnet101_os16", weights=path)
    assert model.strides == (16,) and model.num_classes == 5
    aspp = model.classifier[0]
    rates = [c[0].dilation[0] for c in list(aspp.convs)[1:4]]
    assert rates == [6, 12, 18]
    x = torch.randn(1, 3, *SIZE)
    with torch.inference_mode():
        out16, out8 = model(x), tv(x)["out"]
    assert out16.shape == out8.shape
    assert not torch.allclose(out16, out8)  # the dilation really changed


def test_mismatched_checkpoints_are_clear_errors(tv_checkpoints, tmp_path):
    _, path = tv_checkpoints["deeplabv3_mobilenet_v3_large"]
    with pytest.raises(CheckpointError, match=r"5 classes.*num_classes=11"):
        build_torchvision_model("deeplabv3_mobilenet_v3_large", weights=path, num_classes=11)
    with pytest.raises(CheckpointError, match="does not match"):
        build_torchvision_model("fcn_resnet50", weights=tv_checkpoints["deeplabv3_resnet50"][1])
    lr_path = tv_checkpoints["lraspp_mobilenet_v3_large"][1]
    with pytest.raises(CheckpointError, match="classifier.4.weight"):
        build_torchvision_model("deeplabv3_mobilenet_v3_large", weights=lr_path)
    with pytest.raises(BmvsegError, match="neither a file nor torchvision weights"):
        build_torchvision_model("fcn_resnet50", weights=str(tmp_path / "missing.pth"))
    with pytest.raises(BmvsegError, match="split"):
        build_torchvision_model("fcn_resnet50", split="middle")


def test_bmvseg_checkpoint_round_trip_keeps_labels(tmp_path):
    model = build_torchvision_model("lraspp_mobilenet_v3_large", num_classes=11)
    assert model.class_names[0] == "sky"  # 11 classes without metadata = CamVid
    model.class_names = tuple(f"c{i}" for i in range(11))
    path = tmp_path / "lraspp.pt"
    save_checkpoint(path, model, {"command": "test"})
    again = build_torchvision_model("lraspp_mobilenet_v3_large", weights=path)
    assert again.class_names == model.class_names
    x = torch.randn(1, 3, 48, 64)
    with torch.inference_mode():
        # fp16 storage: close, not equal
        torch.testing.assert_close(again(x), model(x), atol=2e-2, rtol=2e-2)


def test_registry_and_torchvision_weight_names():
    names = available_models()
    assert set(SPECS) <= set(names)
    model = build_model("lraspp_mobilenet_v3_large", weights=None, num_classes=11)
    assert model.num_classes == 11 and model.split == "context"
    cut = build_model("lraspp_mobilenet_v3_large", weights=None, num_classes=11, split="backbone")
    assert cut.split == "backbone"
    with pytest.raises(BmvsegError, match="one of backbone, context"):
        build_model("fcn_resnet50", weights=None, split="middle")
    w = resolve_torchvision_weights("deeplabv3_resnet101", "default")
    assert len(w.meta["categories"]) == 21
    assert resolve_torchvision_weights("deeplabv3_resnet101_os16", "DEFAULT") == w
    with pytest.raises(BmvsegError, match="COCO_WITH_VOC_LABELS_V1"):
        resolve_torchvision_weights("fcn_resnet50", "IMAGENET")


@pytest.mark.parametrize("arch", ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"])
def test_default_weights_come_from_torchvisions_cache(arch, tmp_path, monkeypatch):
    """``weights="DEFAULT"`` goes through torchvision's own download cache (pre-filled here)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    w = resolve_torchvision_weights(arch, "DEFAULT")
    # torchvision's DeepLabV3 files include the auxiliary head; LRASPP has none.
    tv = _random_tv_model(arch, len(w.meta["categories"]), aux=arch.startswith("deeplab"))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(tv.state_dict(), cache / w.url.rsplit("/", 1)[1])
    model = build_torchvision_model(arch, weights="DEFAULT", split="backbone")
    assert model.class_names == tuple(w.meta["categories"])
    assert model.palette.shape == (21, 3) and len({tuple(c) for c in model.palette}) == 21
    assert model.mean == tuple(w.transforms().mean) and model.std == tuple(w.transforms().std)
    x = torch.randn(1, 3, 64, 80)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), tv(x)["out"], atol=1e-3, rtol=1e-4)
