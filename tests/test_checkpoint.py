"""Checkpoints: round trip in fp16, and refusal of unsafe or mismatched files."""

import os
import pickle

import numpy as np
import pytest
import torch

from bmvseg.errors import CheckpointError
from bmvseg.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from bmvseg.models.enet import ENetLite


def _trained_looking(num_classes=11, seed=0):
    torch.manual_seed(seed)
    m = ENetLite(num_classes)
    with torch.no_grad():  # non-trivial BN statistics, so a lost buffer would show
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    return m.eval()


def test_round_trip_fp16_keeps_outputs_and_metadata(tmp_path):
    src = _trained_looking()
    src.class_names = tuple(f"c{i}" for i in range(11))
    path = tmp_path / "m.pt"
    save_checkpoint(path, src, {"command": "bmvseg train x", "miou": 0.5})
    ckpt = read_checkpoint(path)
    assert all(
        v.dtype == torch.float16 for v in ckpt["state_dict"].values() if v.is_floating_point()
    )
    dst = ENetLite(11).eval()
    meta = load_checkpoint(path, dst)
    assert meta["command"] == "bmvseg train x" and meta["architecture"] == "ENetLite"
    assert dst.class_names == src.class_names
    np.testing.assert_array_equal(dst.palette, src.palette)
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        a, b = src(x), dst(x)
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.99
    assert torch.allclose(a, b, atol=0.05 * a.abs().max().item())


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_would_run_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match="evil.pt"):
        load_checkpoint(path, ENetLite(11))
    assert not marker.exists()
    # the same payload as a plain pickle file (not torch's zip format) is refused too
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError, match="evil.pkl"):
        load_checkpoint(raw, ENetLite(11))
    assert not marker.exists()


def test_mismatch_names_what_differs(tmp_path):
    path = tmp_path / "m5.pt"
    save_checkpoint(path, ENetLite(5), {})
    with pytest.raises(CheckpointError, match="5 classes but the model has 11"):
        load_checkpoint(path, ENetLite(11))
    # a bare state_dict without metadata still fails on the exact key and shapes
    bare = tmp_path / "bare.pt"
    torch.save(ENetLite(5).state_dict(), bare)
    with pytest.raises(
        CheckpointError, match=r"head\.1\.weight.*\(5, 32, 1, 1\).*\(11, 32, 1, 1\)"
    ):
        load_checkpoint(bare, ENetLite(11))
    other = tmp_path / "other.pt"
    save_checkpoint(other, torch.nn.Linear(2, 2), {})
    with pytest.raises(CheckpointError, match="architecture Linear"):
        load_checkpoint(other, ENetLite(11))


def test_missing_and_non_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt", ENetLite(11))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_checkpoint(junk, ENetLite(11))
    lst = tmp_path / "list.pt"
    torch.save([1, 2, 3], lst)
    with pytest.raises(CheckpointError, match="not a bmvseg checkpoint"):
        load_checkpoint(lst, ENetLite(11))


def _with_meta(tmp_path, **meta):
    """A bmvseg-format checkpoint of a valid 3-class ENetLite whose metadata is ``meta``."""
    path = tmp_path / "meta.pt"
    save_checkpoint(path, ENetLite(3), {})
    ckpt = torch.load(path, weights_only=True)
    ckpt["meta"].update(meta)
    if "meta" in meta:  # replace the whole dict
        ckpt["meta"] = meta["meta"]
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"num_classes": -3}, r"num_classes must be an integer in \[1, 1000\], not -3"),
        ({"num_classes": 0}, "num_classes must be an integer"),
        ({"num_classes": "3"}, "num_classes must be an integer.*'3'"),
        ({"num_classes": 3.0}, "num_classes must be an integer.*3.0"),
        ({"num_classes": True}, "num_classes must be an integer"),
        ({"num_classes": 10**12}, "num_classes must be an integer.*1000000000000"),
        ({"palette": [[0, 0, 0]] * 2}, "palette has 2 rows for 3 classes"),
        ({"palette": [[0, 0]] * 3}, "palette must be rows of 3 integers"),
        ({"palette": [[0, 0, 256]] * 3}, "palette must be rows of 3 integers 0..255"),
        ({"palette": [[0, -1, 0]] * 3}, "palette must be rows of 3 integers 0..255"),
        ({"palette": "red"}, "palette must be rows"),
        ({"class_names": ["a", 2, "c"]}, "class_names must be strings"),
        ({"class_names": "abc"}, "class_names must be strings"),
        ({"class_names": ["a", "b"]}, "2 class_names for num_classes=3"),
        ({"meta": ["not", "a", "dict"]}, "its 'meta' is a list, not a dict"),
    ],
)
def test_bad_metadata_is_refused_before_anything_is_built(tmp_path, meta, message):
    from bmvseg.models.registry import build_model

    path = _with_meta(tmp_path, **meta)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="meta.pt"):
        build_model("enet_lite", weights=path)  # 10**12 classes would hang allocating


def test_valid_metadata_passes(tmp_path):
    path = _with_meta(tmp_path, palette=[[1, 2, 3]] * 3, class_names=["a", "b", "c"])
    m = ENetLite(3)
    load_checkpoint(path, m)
    assert m.class_names == ("a", "b", "c") and m.palette.tolist() == [[1, 2, 3]] * 3


def test_refused_plain_pickle_prints_no_torch_warning(tmp_path, capfd, recwarn):
    marker = tmp_path / "pwned"
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError, match="evil.pkl"):
        read_checkpoint(raw)
    assert not marker.exists()
    assert len(recwarn) == 0
    out, err = capfd.readouterr()
    assert "Warning" not in err and "Warning" not in out


def test_plain_state_dict_loads_like_pytorch_strict_and_keeps_precision(tmp_path):
    src = _trained_looking(num_classes=5)
    state = src.state_dict()
    published = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "published.pth"
    torch.save(published, path)
    dst = ENetLite(5).eval()
    load_checkpoint(path, dst)
    for k, v in dst.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(v, state[k]), k  # bit-exact: no fp16 round trip
    x = torch.randn(1, 3, 40, 56)
    with torch.inference_mode():
        assert torch.equal(src(x), dst(x))
    # any other missing key stays an error, as in PyTorch's strict loading
    del published["head.1.bias"]
    torch.save(published, path)
    with pytest.raises(CheckpointError, match=r"missing keys \['head\.1\.bias'\]"):
        load_checkpoint(path, ENetLite(5))


def test_published_wrappers_and_data_parallel_prefix_load(tmp_path):
    src = _trained_looking(num_classes=5)
    state = src.state_dict()
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in state.items()}}, wrapped)
    dst = ENetLite(5).eval()
    load_checkpoint(wrapped, dst)
    x = torch.randn(1, 3, 32, 40)
    with torch.inference_mode():
        assert torch.equal(src(x), dst(x))
    torch.save({"epoch": 90, "optimizer": {"lr": 0.1}}, wrapped)
    with pytest.raises(CheckpointError, match="no weights found"):
        load_checkpoint(wrapped, ENetLite(5))
