"""ENetLite's feature/task split and the model registry."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bmvseg.errors import BmvsegError, CheckpointError
from bmvseg.models.checkpoint import save_checkpoint
from bmvseg.models.enet import ENetLite
from bmvseg.models.registry import available_models, build_model, default_weights_path, register


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("size", [(64, 96), (61, 83), (8, 8)])
def test_features_at_stride_4_and_logits_at_input_size(size):
    m = ENetLite(7).eval()
    x = torch.randn(2, 3, *size)
    with torch.inference_mode():
        (f,) = m.features(x)
        out = m.task((f,), size)
    assert m.strides == (4,) and m.stride == 4
    assert f.shape == (2, 64, -(-size[0] // 4), -(-size[1] // 4))
    assert out.shape == (2, 7, *size)
    with torch.inference_mode():
        assert torch.allclose(m(x), out)


def test_channels_last_gives_the_same_result():
    torch.manual_seed(0)
    m = ENetLite().eval()
    x = torch.randn(1, 3, 72, 96)
    with torch.inference_mode():
        ref = m(x)
        cl = m.to(memory_format=torch.channels_last)(
            x.contiguous(memory_format=torch.channels_last)
        )
    assert torch.allclose(ref, cl, atol=1e-4)


def test_features_are_local_so_far_away_change_does_not_leak():
    # No global pooling: editing the left edge must not change features ~1500 px away,
    # which is what makes warping the feature map meaningful.
    torch.manual_seed(0)
    m = ENetLite().eval()
    x = torch.randn(1, 3, 32, 1600)  # receptive field is about +-700 px
    y = x.clone()
    y[..., :16] = 0
    with torch.inference_mode():
        fx, fy = m.features(x)[0], m.features(y)[0]
    assert not torch.allclose(fx[..., :4], fy[..., :4])
    assert torch.allclose(fx[..., -8:], fy[..., -8:])


def test_registry_builds_and_resolves_weights(tmp_path):
    assert "enet_lite" in available_models()
    m = build_model("enet_lite", weights=None, num_classes=5)
    assert m.num_classes == 5 and not m.training
    path = tmp_path / "w.pt"
    save_checkpoint(path, m, {})
    m2 = build_model("enet_lite", weights=str(path), num_classes=5)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-2 * (a.abs().max().item() + 1))
    assert build_model("enet_lite", weights=path).num_classes == 5  # the file decides
    with pytest.raises(CheckpointError, match="5 classes but the model has 11"):
        build_model("enet_lite", weights=path, num_classes=11)
    with pytest.raises(BmvsegError, match="unknown model 'nope'"):
        build_model("nope")
    with pytest.raises(BmvsegError, match="split 'context' for model 'enet_lite'.*not a choice"):
        build_model("enet_lite", weights=None, split="context")
    if default_weights_path("enet_lite") is None:
        with pytest.raises(CheckpointError, match="no shipped weights"):
            build_model("enet_lite")
    else:
        assert build_model("enet_lite").num_classes == 11


def test_register_adds_a_builder_and_refuses_silent_overwrite():
    def tiny(*, num_classes=None):
        return ENetLite(num_classes or 3)

    register("test_tiny_enet", tiny, overwrite=True)
    assert build_model("test_tiny_enet", weights="none").num_classes == 3
    with pytest.raises(ValueError, match="already registered"):
        register("test_tiny_enet", tiny)


def test_task_is_the_bilinear_upsample_of_low_resolution_logits():
    m = ENetLite(5).eval()
    x = torch.randn(1, 3, 50, 70)
    with torch.inference_mode():
        feats = m.features(x)
        low = m.logits(feats)
        assert low.shape == (1, 5, 13, 18) and m.has_lowres_logits
        up = torch.nn.functional.interpolate(low, size=(50, 70), mode="bilinear")
        assert torch.equal(m.task(feats, (50, 70)), up)


def test_declared_output_conventions_drop_void_and_merge_classes():
    from bmvseg.models.base import SegmentationModel, check_output_conventions

    raw = torch.randn(2, 4, 3, 5)
    m = SegmentationModel()
    m.void_index = 1
    torch.testing.assert_close(m.map_outputs(raw), raw[:, [0, 2, 3]])
    m.void_index, m.class_map = 3, (1, 0, 1, 0)
    out = m.map_outputs(raw)
    torch.testing.assert_close(out[:, 0], raw[:, 1])
    torch.testing.assert_close(out[:, 1], torch.maximum(raw[:, 0], raw[:, 2]))
    m.void_index, m.class_map = None, (0, None, 2, 2)  # class 1 gets no output: never wins
    assert m.map_outputs(raw)[:, 1].eq(float("-inf")).all()
    assert check_output_conventions(12, 11, None) == 11
    assert check_output_conventions(4, None, (0, None, 2, 2)) == 3
    for void, cmap, msg in [(4, None, "void_index=4 is not an output"),
                            (None, (0, 1), "class_map has 2 entries but the network has 4"),
                            (None, (0, -1, 1, 1), "class ids >= 0 or None, not -1"),
                            (None, (None,) * 4, "leave no class")]:  # fmt: skip
        with pytest.raises(BmvsegError, match=msg):
            check_output_conventions(4, void, cmap)


def test_preprocess_honours_channel_order_scale_mean_std():
    import numpy as np

    m = ENetLite(3)
    rgb = np.array([[[10, 20, 30]]], np.uint8)
    m.channel_order, m.scale, m.mean, m.std = "BGR", 1.0, (1.0, 2.0, 3.0), (2.0, 4.0, 8.0)
    x = m.preprocess(rgb)
    torch.testing.assert_close(x[0, :, 0, 0], torch.tensor([29 / 2, 18 / 4, 7 / 8]))


def test_a_declared_input_multiple_pads_the_input_and_crops_every_output():
    torch.manual_seed(0)
    model = ENetLite().eval()
    model.input_multiple, model.pad_mode = 16, "replicate"
    rgb = np.random.default_rng(1).integers(0, 256, (60, 100, 3), np.uint8)
    x = model.preprocess(rgb)
    assert x.shape == (1, 3, 64, 112) and model.padded_size((60, 100)) == (64, 112)
    torch.testing.assert_close(x[..., 60:, :100], x[..., 59:60, :100].expand(-1, -1, 4, -1))
    with torch.inference_mode():
        feats = model.features(x)
        low = model.logits(feats)
        full = F.interpolate(low, (64, 112), mode="bilinear", align_corners=False)
        assert torch.equal(model.task(feats, (60, 100)), full[..., :60, :100])
        half = F.interpolate(low, (32, 56), mode="bilinear", align_corners=False)
        assert torch.equal(model.task(feats, (30, 50)), half[..., :30, :50])  # label stride 2
    model.input_multiple = 1
    assert model.preprocess(rgb).shape == (1, 3, 60, 100)
