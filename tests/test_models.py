"""ENetLite's feature/task split and the model registry."""

import pytest
import torch

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
