"""One implementation behind every number: the benchmark scores exactly what the engine yields.

The sweep runs the engine at every keyframe phase on shared caches; these tests hold it to the
labels of plain streaming runs, and hold the engine's Alg. 2 to a computation written out here
by hand (so swapping the forward and backward fusion weights anywhere fails).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from bmvseg.data.textures import moving_texture_clip
from bmvseg.evaluation.clips import EvalClip
from bmvseg.evaluation.metrics import ConfusionMatrix
from bmvseg.evaluation.sweep import AccuracySweep, Variant, scored_key
from bmvseg.models.registry import build_model
from bmvseg.schemes.engine import Engine, EngineConfig
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.training.fusion import CLIP_ENCODING, Window, fused_logits
from bmvseg.video.encode import X264_ONE_REF, encode_video
from bmvseg.video.reader import VideoReader
from bmvseg.warp import backward_flow, field_to_flow, warp

H, W, T = 64, 96, 12
VARIANTS = [Variant("prop-flow"), Variant("prop-bmv"), Variant("inter-bmv", "avg"),
            Variant("inter-bmv", "max"), Variant("inter-bmv", "conv"), Variant("inter-flow", "avg"),
            Variant("inter-flow", "conv")]  # fmt: skip


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("enet_lite", weights=None).to(memory_format=torch.channels_last).eval()


@pytest.fixture(scope="module")
def conv(model) -> ConvFusion:
    torch.manual_seed(1)
    fusion = ConvFusion([64])
    with torch.no_grad():  # away from its avg initialisation, so conv differs from avg
        fusion.convs[0].weight.add_(0.05 * torch.randn_like(fusion.convs[0].weight))
    return fusion.eval()


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    frames, _ = moving_texture_clip("object", H, W, T, seed=7, speed=3.0)
    path = tmp_path_factory.mktemp("parity") / "clip.mp4"
    encode_video(frames, path, options={"crf": "18", **X264_ONE_REF})
    return path


def engine_labels(model, conv, video, v: Variant, n: int, phase: int) -> dict[int, np.ndarray]:
    cfg = EngineConfig(scheme=v.scheme, interval=n, phase=phase, fusion=v.fusion or "avg")
    with VideoReader(video) as reader:
        return {r.index: r.labels for r in Engine(model, cfg, conv).run(reader.frames())}


def test_sweep_scores_exactly_what_the_engine_yields_at_each_phase(model, conv, video) -> None:
    intervals = [2, 3, 5]
    sweep = AccuracySweep(model, VARIANTS, intervals, conv=conv)
    per_frame = sweep.add_clip(EvalClip("clip", video, None))
    for n in intervals:
        for phase in range(n):
            frames = [t for t in range(T) if scored_key(t, n, phase, T) is not None]
            for v in VARIANTS:
                labels = engine_labels(model, conv, video, v, n, phase)
                cm = ConfusionMatrix(model.num_classes)
                for t in frames:
                    cm.update(labels[t], per_frame[t])
                got = sweep.phase_cms[v.scheme, v.fusion, n, phase]
                assert np.array_equal(got.mat, cm.mat), (v.label, n, phase)
                assert sweep.phase_frames[v.scheme, v.fusion, n, phase] == len(frames)
    # Not vacuous: propagation disagrees with per-frame somewhere on this moving clip.
    assert sweep.miou_avg_min(Variant("prop-bmv"), 5)[1] < 100


def test_engine_fuses_forward_and_backward_chains_with_the_paper_weights(model, video) -> None:
    n, p = 5, 1  # the frame next to the previous keyframe: forward weight 4/5, backward 1/5
    cfg = EngineConfig(scheme="inter-bmv", interval=n, keep_features=True)
    with VideoReader(video) as reader:
        frames = list(reader.frames())
    results = {r.index: r for r in Engine(model, cfg).run(iter(frames))}
    with torch.inference_mode():
        key = model.features(model.preprocess(frames[0].image))[0]
        nxt = model.features(model.preprocess(frames[n].image))[0]
        hw, s = tuple(key.shape[-2:]), model.strides[0]
        ff = key
        for j in range(1, p + 1):
            ff = warp(ff, field_to_flow(frames[j].motion, hw, s))
        fb = nxt
        for j in range(n, p, -1):
            fb = warp(fb, backward_flow(field_to_flow(frames[j].motion, hw, s)))
        expected = (n - p) / n * ff + p / n * fb
        swapped = p / n * ff + (n - p) / n * fb
    got = results[p].features[0]
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, swapped, atol=1e-3)


def test_fusion_training_uses_the_engine_interpolation(model, conv, tmp_path) -> None:
    frames, _ = moving_texture_clip("object", H, W, 6, seed=3, speed=3.0)
    window = Window(frames, 2, np.zeros((H, W), np.uint8))
    path = tmp_path / "window.mp4"
    encode_video(frames, path, fps=15.0, options=CLIP_ENCODING)
    # fused_logits encodes the window again: the two encodes must carry the same motion (this
    # test failed once in a full suite run, by about 1e-3; this says whether the codec moved)
    again = io.BytesIO()
    encode_video(frames, again, fps=15.0, options=CLIP_ENCODING)
    again.seek(0)
    with VideoReader(path, motion="native") as a, VideoReader(again, motion="native") as b:
        for fa, fb in zip(a.frames(images=False), b.frames(images=False), strict=True):
            assert np.array_equal(fa.motion.mv, fb.motion.mv), f"x264 differs at {fa.index}"
    for op, fusion in (("avg", None), ("conv", conv)):
        cfg = EngineConfig(scheme="inter-bmv", interval=5, fusion=op, keep_logits=True)
        with VideoReader(path, motion="native") as reader:
            res = {r.index: r for r in Engine(model, cfg, fusion).run(reader.frames())}
        with torch.no_grad():
            logits = fused_logits(model, fusion, window, op)
        gap = float((logits - res[2].logits).abs().max())
        assert torch.allclose(logits, res[2].logits, atol=1e-5), (op, gap, res[2].sources)


@pytest.mark.parametrize("scheme", ["inter-bmv", "inter-flow"])
def test_benchmark_phase_zero_is_what_segment_writes(model, video, tmp_path, scheme) -> None:
    """``phases.csv`` at phase 0 against per-frame equals the agreement of two ``bmvseg segment``
    runs' label PNGs on the frames that phase scores."""
    import csv

    import cv2

    from bmvseg.cli.main import main
    from bmvseg.models.checkpoint import save_checkpoint

    weights = tmp_path / "w.pt"
    save_checkpoint(weights, model, {})
    n = 5
    common = ["--weights", str(weights), "--no-overlay"]
    assert main(["segment", str(video), "-o", str(tmp_path / "pf"), "--scheme", "per-frame",
                 *common]) == 0  # fmt: skip
    assert main(["segment", str(video), "-o", str(tmp_path / "ib"), "-k", str(n), "--scheme",
                 scheme, *common]) == 0  # fmt: skip
    assert main(["benchmark", str(video), "--reference", "per-frame", "-o", str(tmp_path / "b"),
                 "--weights", str(weights), "--schemes", scheme, "--fusions", "avg",
                 "--intervals", str(n), "--no-throughput"]) == 0  # fmt: skip
    with open(tmp_path / "b" / "phases.csv") as fh:
        (row,) = [r for r in csv.DictReader(fh) if r["phase"] == "0"]
    cm = ConfusionMatrix(model.num_classes)
    frames = [t for t in range(T) if scored_key(t, n, 0, T) is not None]
    for t in frames:
        read = [cv2.imread(str(tmp_path / d / "labels" / f"{t:06d}.png"), cv2.IMREAD_UNCHANGED)
                for d in ("ib", "pf")]  # fmt: skip
        cm.update(*read)
    assert int(row["frames"]) == len(frames)
    assert abs(float(row["miou"]) - 100 * cm.miou()) <= 0.05
