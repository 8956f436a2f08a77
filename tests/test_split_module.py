"""split_module: any PyTorch network cut with torch.fx into features + task, same output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import BmvsegError
from bmvseg.models.split import split_module
from bmvseg.run.iterate import segment
from bmvseg.video.encode import X264_ONE_REF, encode_video

SIZE = (61, 83)
MEAN, STD = (0.3, 0.4, 0.5), (0.2, 0.3, 0.25)


def _cbr(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class StreetNet(nn.Module):
    """BGR-input network with 12 outputs (11 CamVid classes + void last), torchvision-style
    dict output with an aux head, upsampled to the input size at the end."""

    def __init__(self, skip: bool = False) -> None:
        super().__init__()
        self.skip = skip
        self.stem = _cbr(3, 8, 2)
        self.down = nn.Sequential(_cbr(8, 16, 2), _cbr(16, 16, 2))
        self.context = _cbr(16, 16, dilation=2)
        self.head = nn.Sequential(_cbr(16 + 8 * skip, 16), nn.Conv2d(16, 12, 1))
        self.aux = nn.Conv2d(8, 12, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        s = self.stem(x)
        c = self.context(self.down(s))
        if self.skip:
            c = torch.cat([F.interpolate(c, size=s.shape[-2:], mode="bilinear"), s], 1)
        y = self.head(c)
        out = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return {"out": out, "aux": self.aux(s)}


def _random(net: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


@pytest.fixture
def net() -> StreetNet:
    torch.manual_seed(0)
    return _random(StreetNet())


def _split(net: nn.Module, cut="context", **kw):
    kw = {"class_names": CAMVID_CLASSES, "mean": MEAN, "std": STD, "channel_order": "BGR",
          "void_index": 11, **kw}  # fmt: skip
    return split_module(net, cut, **kw)


def test_features_and_task_equal_the_network_without_its_void_output(net):
    model = _split(net)
    assert model.strides == (8,) and model.num_classes == 11 and not model.training
    assert model.class_names == CAMVID_CLASSES
    np.testing.assert_array_equal(model.palette, CAMVID_PALETTE)
    x = torch.randn(2, 3, *SIZE)
    with torch.inference_mode():
        feats = model.features(x)
        out = model.task(feats, SIZE)
        ref = net(x)["out"]
        assert feats[0].shape == (2, 16, -(-SIZE[0] // 8), -(-SIZE[1] // 8))
        # the network ends in an upsample to the image size: split off as low-res logits
        assert model.has_lowres_logits
        assert model.logits(feats).shape == (2, 11, *feats[0].shape[-2:])
        torch.testing.assert_close(out, ref[:, :11], rtol=1e-5, atol=1e-5)
        small = model.task(feats, (16, 21))  # label_stride: scores at a smaller size
    assert small.shape == (2, 11, 16, 21)


def test_bgr_input_scale_and_normalisation_are_declared_not_coded(net):
    model = _split(net, scale=1.0)
    rgb = np.random.default_rng(0).integers(0, 256, (*SIZE, 3), np.uint8)
    x = model.preprocess(rgb)
    bgr = torch.from_numpy(rgb[..., ::-1].copy()).permute(2, 0, 1)[None].float()
    expect = (bgr - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expect)
    assert _split(net).preprocess(rgb)[0, 0, 0, 0] == pytest.approx(
        (rgb[0, 0, 2] / 255 - MEAN[0]) / STD[0], rel=1e-5
    )


def test_void_never_wins_and_class_map_merges_outputs(net):
    with torch.no_grad():
        net.head[1].bias[11] = 1e4  # void wins every pixel of the network's own output
    model = _split(net)
    x = torch.randn(1, 3, *SIZE)
    with torch.inference_mode():
        assert net(x)["out"].argmax(1).eq(11).all()
        labels = model(x).argmax(1)
    assert int(labels.max()) < 11
    cmap = [0, 0, 1, 1, 2, 2, 0, 1, 2, 0, 1, None]  # 11 classes onto 3, void dropped
    merged = _split(net, class_names=("a", "b", "c"), class_map=cmap)
    assert merged.num_classes == 3 and merged.palette.shape == (3, 3)
    with torch.inference_mode():
        out, ref = merged(x), net(x)["out"]
    for c in range(3):
        rows = [i for i, m in enumerate(cmap) if m == c]
        torch.testing.assert_close(out[:, c], ref[:, rows].amax(1), rtol=1e-5, atol=1e-4)


def test_a_cut_inside_a_branch_is_refused_and_listing_both_works():
    net = _random(StreetNet(skip=True))
    with pytest.raises(BmvsegError, match=r"does not separate StreetNet's graph: .*uses 'stem\.2'"):
        _split(net, "context")
    model = _split(net, ["context", "stem"])
    assert model.strides == (8, 2)
    x = torch.randn(1, 3, *SIZE)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), net(x)["out"][:, :11], rtol=1e-5, atol=1e-5)


class Untraceable(StreetNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.context(self.down(self.stem(x))))
        if y.mean() > 0:  # data-dependent Python control flow
            y = -y
        return y


class UsesImage(StreetNet):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.context(self.down(self.stem(x))))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear") + x.mean()


def test_refusals_say_why_and_what_to_try(net):
    with pytest.raises(BmvsegError, match="cannot trace Untraceable with torch.fx .*submodule"):
        _split(_random(Untraceable()))
    with pytest.raises(BmvsegError, match="no submodule 'contxt'; did you mean context"):
        _split(net, "contxt")
    with pytest.raises(BmvsegError, match="'aux' is not on the path to its output"):
        _split(net, "aux")
    with pytest.raises(BmvsegError, match="after the cut also uses the input image"):
        _split(_random(UsesImage()))
    with pytest.raises(BmvsegError, match="returns a 3-D tensor|not an \\(N, C, H, W\\)"):
        split_module(nn.Sequential(nn.Flatten(2), nn.Identity()), "0")
    with pytest.raises(BmvsegError, match="class_names for the 11 classes"):
        _split(net, class_names=CAMVID_CLASSES[:5])
    with pytest.raises(BmvsegError, match="void_index=12 is not an output"):
        _split(net, void_index=12)


def test_plain_tensor_output_at_low_resolution(net):
    body = nn.Sequential(net.stem, net.down, net.context, net.head)  # no upsample, stride 8
    model = split_module(body, "2", void_index=11)
    assert model.strides == (8,) and model.has_lowres_logits
    x = torch.randn(1, 3, *SIZE)
    with torch.inference_mode():
        ref = F.interpolate(body(x), size=SIZE, mode="bilinear", align_corners=False)
        torch.testing.assert_close(model(x), ref[:, :11], rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    frames = moving_texture_clip("object", 48, 64, 12, seed=4, speed=1.5)[0]
    encode_video(frames, path, options=X264_ONE_REF)
    return path


def test_the_engine_runs_a_split_network(video):
    net = _random(StreetNet(skip=True))
    model = _split(net, ["context", "stem"])
    per = [r.labels for r in segment(video, model=model, scheme="per-frame")]
    k1 = [r.labels for r in segment(video, model=model, scheme="inter-bmv", interval=1)]
    assert len(per) == 12 and all(np.array_equal(a, b) for a, b in zip(per, k1, strict=True))
    k5 = list(segment(video, model=model, scheme="inter-bmv", interval=5))
    assert [r.index for r in k5] == list(range(12))
    assert all(r.labels.shape == (48, 64) and r.labels.max() < 11 for r in k5)


def test_torchvision_deeplabv3_cut_at_aspp_equals_the_context_split(tmp_path):
    pytest.importorskip("torchvision", reason="torchvision is an optional extra")
    from torchvision.models.segmentation import deeplabv3_mobilenet_v3_large

    from bmvseg.models.torchvision_seg import build_torchvision_model

    torch.manual_seed(0)
    tv = _random(deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5))
    path = tmp_path / "tv.pth"
    torch.save(tv.state_dict(), path)
    hand = build_torchvision_model("deeplabv3_mobilenet_v3_large", weights=path, split="context")
    model = split_module(tv, "classifier.0", mean=hand.mean, std=hand.std)
    assert model.strides == hand.strides
    x = torch.randn(1, 3, 97, 129)
    with torch.inference_mode():
        fa, fb = model.features(x), hand.features(x)
        torch.testing.assert_close(fa[0], fb[0], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(model.task(fa, (97, 129)), hand.task(fb, (97, 129)))
        torch.testing.assert_close(model.logits(fa), hand.logits(fb), rtol=1e-4, atol=1e-4)


class Needs8(nn.Module):
    """Input sides must be multiples of 8: its stride-8 map, upsampled x2, meets the stride-4
    one (as in most encoder-decoders); ``final`` is how its output reaches the input size."""

    def __init__(self, final: str = "bilinear") -> None:
        super().__init__()
        self.final = final
        self.stem, self.mid, self.deep = _cbr(3, 8, 2), _cbr(8, 16, 2), _cbr(16, 16, 2)
        self.fuse = _cbr(32, 16)
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.mid(self.stem(x))
        b = F.interpolate(self.deep(a), scale_factor=2.0, mode="nearest")
        y = self.head(self.fuse(torch.cat([a, b], 1)))
        if self.final == "bilinear":
            return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return F.interpolate(y, size=x.shape[-2:], mode="nearest")


@pytest.fixture(scope="module")
def odd_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("odd") / "clip.mp4"
    frames = moving_texture_clip("object", 60, 100, 12, seed=5, speed=1.5)[0]
    encode_video(frames, path, options=X264_ONE_REF)
    return path


def _own_argmax(net: nn.Module, rgb: np.ndarray) -> np.ndarray:
    """The network's own labels for a frame: normalised, padded (replicate) at the bottom and
    right to multiples of 8, run, cropped back."""
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    h, w = rgb.shape[:2]
    x = F.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")
    with torch.inference_mode():
        return net(x)[0, :, :h, :w].argmax(0).to(torch.uint8).numpy()


@pytest.mark.parametrize("final", ["bilinear", "nearest"])
def test_a_network_needing_multiples_of_8_runs_on_any_size_with_every_scheme(odd_video, final):
    net = _random(Needs8(final))
    with pytest.raises(RuntimeError, match="Sizes of tensors must match"):
        net(torch.zeros(1, 3, 60, 100))  # 60 = 4 x 15: the network alone fails
    model = split_module(net, "fuse", mean=MEAN, std=STD)
    assert (model.input_multiple, model.pad_mode, model.split) == (8, "replicate", "fuse")
    assert model.has_lowres_logits == (final == "bilinear")
    per = list(segment(odd_video, model=model, scheme="per-frame"))
    assert len(per) == 12
    for r in per:
        assert r.labels.shape == (60, 100)
        np.testing.assert_array_equal(r.labels, _own_argmax(net, r.frame.image))
    for scheme in ("prop-flow", "prop-bmv", "inter-bmv"):
        for opts in ({}, {"label_stride": 2}):
            out = list(segment(odd_video, model=model, scheme=scheme, interval=4, **opts))
            assert [r.labels.shape for r in out] == [(60, 100)] * 12, (scheme, opts)
            if not opts:  # keyframes run the feature network on the padded frame itself
                keys = [r for r in out if r.keyframe]
                assert len(keys) >= 3
                for r in keys:
                    np.testing.assert_array_equal(r.labels, per[r.index].labels)


def test_a_size_error_inside_the_network_is_one_line_naming_size_and_multiple(odd_video):
    model = split_module(_random(Needs8()), "fuse", input_multiple=1)
    assert model.input_multiple == 1
    with pytest.raises(BmvsegError) as err:
        list(segment(odd_video, model=model, scheme="per-frame"))
    msg = str(err.value)
    assert "Needs8 failed on a 60x100 input" in msg and "not divisible by 8" in msg
    assert "input_multiple=8" in msg and "\n" not in msg
    for bad in (0, "8", True):
        with pytest.raises(BmvsegError, match="input_multiple must be an integer"):
            split_module(_random(Needs8()), "fuse", input_multiple=bad)
    with pytest.raises(BmvsegError, match="pad_mode must be one of replicate, reflect"):
        split_module(_random(Needs8()), "fuse", pad_mode="zeros")


def test_reflect_padding_and_a_network_that_takes_any_size(net):
    model = split_module(_random(Needs8()), "fuse", pad_mode="reflect", input_multiple=16)
    x = model.preprocess(np.arange(60 * 100 * 3, dtype=np.uint8).reshape(60, 100, 3))
    assert x.shape == (1, 3, 64, 112)
    torch.testing.assert_close(x[..., 60:, :100], x[..., 55:59, :100].flip(-2))  # mirrored
    torch.testing.assert_close(x[..., :60, 100:], x[..., :60, 87:99].flip(-1))
    assert _split(net).input_multiple == 1  # StreetNet resizes its maps to each other
