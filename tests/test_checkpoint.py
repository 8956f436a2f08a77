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
