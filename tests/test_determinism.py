"""Labels do not depend on the number of torch threads (byte-identical at 1, 2 and 4).

PyTorch runs a 1x1 convolution with im2col + GEMM at one thread and with oneDNN at two or
more; the two round differently, and the shipped model's classifier is a 1x1 convolution (so
is conv fusion).  Before :class:`bmvseg.models.base.PinnedConv2d`, labels of real clips moved
by a pixel on a few frames (Megamind.avi frames 62 and 71 with the default scheme, 4 and 53
with conv fusion; bigbuckbunny.mp4 frame 30).  Each thread count runs in its own process: the
thread count of a process is set once, before torch does any work.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bmvseg.data.textures import moving_texture_clip
from bmvseg.models.base import PinnedConv2d, pin_conv_kernel
from bmvseg.video.encode import X264_ONE_REF, encode_video

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
THREADS = (1, 2, 4)
# (clip, start, end, options): the windows of real clips where labels moved before the fix
REAL_RUNS = [
    ("Megamind.avi", 60, 75, {}),  # MPEG-4 part 2 with cuts: frames 62 and 71
    ("Megamind.avi", 0, 10, {"fusion": "conv"}),  # frame 4
    ("bigbuckbunny.mp4", 30, 32, {"scheme": "per-frame"}),  # 720p H.264: frame 30
]
# the encoded clip is small: its labels rarely meet a near-tie, so its logits are compared too
# (before the fix they differed on every frame)
CLIP_RUNS = [
    (0, 16, {"scheme": "per-frame", "keep_logits": True}),
    (0, 16, {}),
    (0, 16, {"fusion": "conv", "keep_logits": True}),
]

_RUN = """
import hashlib, json, sys, torch
torch.set_num_threads(int(sys.argv[1]))
import bmvseg
def digest(r):
    h = hashlib.sha256(r.labels.tobytes())
    if r.logits is not None:
        h.update(r.logits.contiguous().numpy().tobytes())
    return h.hexdigest()
print(json.dumps([[digest(r) for r in bmvseg.segment(video, start=start, end=end, **options)]
                  for video, start, end, options in json.loads(sys.argv[2])]))
"""


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("det") / "clip.mp4"
    frames = moving_texture_clip("object", 120, 200, 16, seed=11, speed=2.0)[0]
    encode_video(frames, path, options=X264_ONE_REF)
    return path


@pytest.fixture(scope="module")
def runs(clip) -> list[tuple[tuple, dict[int, list[str]]]]:
    """Every run's label hashes at each thread count, one process per thread count."""
    jobs = [(str(clip), *run) for run in CLIP_RUNS]
    jobs += [(str(REAL / name), *run) for name, *run in REAL_RUNS if (REAL / name).is_file()]
    by_threads = {}
    for t in THREADS:
        out = subprocess.run(
            [sys.executable, "-c", _RUN, str(t), json.dumps(jobs)],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        by_threads[t] = json.loads(out.stdout)
    return [(job, {t: by_threads[t][i] for t in THREADS}) for i, job in enumerate(jobs)]


def _assert_thread_independent(job: tuple, hashes: dict[int, list[str]]) -> None:
    _, start, end, options = job
    assert len(hashes[1]) == end - start
    for t in THREADS[1:]:
        pairs = enumerate(zip(hashes[1], hashes[t], strict=True))
        differ = [start + i for i, (a, b) in pairs if a != b]
        assert not differ, f"frames {differ} differ between 1 and {t} threads ({options})"


def test_labels_of_an_encoded_clip_do_not_depend_on_threads(runs, clip):
    mine = [(job, h) for job, h in runs if job[0] == str(clip)]
    assert len(mine) == len(CLIP_RUNS)
    for job, hashes in mine:
        _assert_thread_independent(job, hashes)


@pytest.mark.parametrize("run", REAL_RUNS, ids=lambda r: f"{r[0]}-{r[1]}-{r[2]}")
def test_labels_of_real_clips_do_not_depend_on_threads(runs, run):
    name, *rest = run
    if not (REAL / name).is_file():
        pytest.skip(f"real footage {name} not present in {REAL}")
    job = (str(REAL / name), *rest)
    _assert_thread_independent(job, next(h for j, h in runs if j == job))


def test_pinned_convolutions_equal_pytorch_multithreaded_and_keep_their_parameters():
    torch.manual_seed(0)
    convs = torch.nn.Sequential(
        torch.nn.Conv2d(32, 11, 1),
        torch.nn.Conv2d(11, 8, 3, padding=1, padding_mode="replicate"),
        torch.nn.Conv2d(8, 8, 3, stride=2, dilation=2, groups=4, bias=False),
    ).eval()
    x = torch.randn(1, 32, 37, 53).contiguous(memory_format=torch.channels_last)
    keys = list(convs.state_dict())
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # PyTorch's own choice here is oneDNN for every one of them
    try:
        with torch.no_grad():
            want = convs(x)
            pin_conv_kernel(convs)
            assert all(type(m) is PinnedConv2d for m in convs)
            got2 = convs(x)
        torch.set_num_threads(1)
        with torch.no_grad():
            got1 = convs(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(got1, want) and torch.equal(got2, want)
    assert list(convs.state_dict()) == keys
    # with gradients it is PyTorch's own convolution (training keeps its autograd path)
    convs[0].weight.requires_grad_(True)
    y = convs[0](x)
    y.sum().backward()
    assert convs[0].weight.grad is not None
    assert np.isfinite(convs[0].weight.grad.numpy()).all()
