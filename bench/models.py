"""Per model and resolution: time of the feature network, the task network and the feature warp.

Why: the keyframe scheme's speedup is bounded by what a non-key frame costs (warp + task)
relative to a keyframe (features + task); where a network is split decides that ratio.  Each
torchvision model is timed at both split points, plus every other model in the registry, in
three execution modes, interleaved so machine noise hits all of them alike:

- ``eager``: contiguous (NCHW) weights and input, ``torch.no_grad``;
- ``cl``: channels_last weights and input, ``torch.no_grad``;
- ``cl+im``: channels_last, ``torch.inference_mode``.

The warp is :func:`bmvseg.warp.warp` (bilinear ``grid_sample``) of every feature tensor with a
non-zero flow, in the memory format ``features`` returned.  Random weights (timing does not
depend on them), 11 classes (CamVid).  ``segformer-b0`` ... ``segformer-b5`` are Hugging Face
SegFormers built from a ``SegformerConfig`` of that size with random weights and Cityscapes' 19
classes (no download; needs transformers), timed at both splits.  Usage::

    python bench/models.py --sizes 480x360,960x720 --models deeplabv3_resnet101,enet_lite
    python bench/models.py --sizes 960x720,1024x2048 --models segformer-b0 --modes cl+im
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from bmvseg.models.registry import available_models, build_model
from bmvseg.warp import warp

MODES = ("eager", "cl", "cl+im")
# SegFormer sizes (the paper's Table 1 / the published configs): hidden sizes, depths, decoder
SEGFORMER = {
    "b0": ([32, 64, 160, 256], [2, 2, 2, 2], 256),
    "b1": ([64, 128, 320, 512], [2, 2, 2, 2], 256),
    "b2": ([64, 128, 320, 512], [3, 4, 6, 3], 768),
    "b3": ([64, 128, 320, 512], [3, 4, 18, 3], 768),
    "b4": ([64, 128, 320, 512], [3, 8, 27, 3], 768),
    "b5": ([64, 128, 320, 512], [3, 6, 40, 3], 768),
}
K = 10  # keyframe interval for the speedup bound column


def _models(selected: list[str] | None) -> list[tuple[str, str | None]]:
    """(registry name, split or None) pairs; torchvision models get both split points."""
    from bmvseg.models.torchvision_seg import SPECS  # registers the torchvision builders

    names = available_models()
    extra = [f"segformer-{b}" for b in SEGFORMER]
    if selected:
        unknown = [s for s in selected if s.split("@")[0] not in names + extra]
        if unknown:
            sys.exit(f"unknown models {unknown}; available: {', '.join(names)}")
        names = selected
    out: list[tuple[str, str | None]] = []
    for n in names:
        base, _, split = n.partition("@")
        if base in SPECS or base in extra:
            out += [(base, s) for s in ((split,) if split else ("backbone", "context"))]
        elif base == "segformer":
            continue  # needs a checkpoint; timed as segformer-b0 ... b5
        else:
            out.append((base, None))
    return out


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _segformer(size: str, split: str) -> torch.nn.Module:
    """A random-weight SegFormer of published size ``size`` (b0..b5), Cityscapes' 19 classes."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from bmvseg.models.segformer import SegformerSeg

    hidden, depths, decoder = SEGFORMER[size]
    cfg = SegformerConfig(hidden_sizes=hidden, depths=depths, decoder_hidden_size=decoder,
                          num_labels=19)  # fmt: skip
    return SegformerSeg(SegformerForSemanticSegmentation(cfg), split)


def _build(name: str, split: str | None) -> torch.nn.Module:
    torch.manual_seed(0)
    if name.startswith("segformer-"):
        return _segformer(name.removeprefix("segformer-"), split or "context")
    if split is None:
        return build_model(name, weights=None, num_classes=11)
    from bmvseg.models.torchvision_seg import build_torchvision_model

    return build_torchvision_model(name, weights=None, num_classes=11, split=split)


def bench_one(
    name: str,
    split: str | None,
    size: tuple[int, int],
    reps: int,
    big_reps: int,
    warmup: int,
    modes: tuple[str, ...] = MODES,
):
    """{mode: {"features"|"task"|"warp": [ms...]}}, the feature shapes and strides.

    ``big_reps`` repetitions instead of ``reps`` when a warm-up keyframe took over a second.
    """
    w, h = size
    base = _build(name, split).eval()
    base = base.to(memory_format=torch.contiguous_format)
    models = {"eager": base}
    if "cl" in modes or "cl+im" in modes:
        models["cl"] = copy.deepcopy(base).to(memory_format=torch.channels_last)
        models["cl+im"] = models["cl"]
    x = torch.randn(1, 3, h, w)
    inputs = {"eager": x, "cl": x.contiguous(memory_format=torch.channels_last)}
    inputs["cl+im"] = inputs["cl"]
    ctx = {"eager": torch.no_grad, "cl": torch.no_grad, "cl+im": torch.inference_mode}
    times = {m: {"features": [], "task": [], "warp": []} for m in MODES}
    shapes = []

    def step(mode: str, record: bool) -> None:
        model, inp = models[mode], inputs[mode]
        with ctx[mode]():
            holder = {}
            tf = _timed(lambda: holder.setdefault("f", model.features(inp)))
            feats = holder["f"]
            flows = []
            for f in feats:  # a smooth non-zero pull flow, so the warp really resamples
                fh, fw = f.shape[-2:]
                g = torch.linspace(0, 1, fh * fw).view(1, 1, fh, fw)
                flows.append(torch.cat([0.7 + g, -0.4 + 0.5 * g], 1))
            tw = _timed(lambda: [warp(f, fl) for f, fl in zip(feats, flows, strict=True)])
            tt = _timed(lambda: model.task(feats, (h, w)))
        if record:
            times[mode]["features"].append(tf)
            times[mode]["task"].append(tt)
            times[mode]["warp"].append(tw)
        if not shapes:
            shapes.extend(tuple(f.shape[1:]) for f in feats)

    for _ in range(warmup):
        for mode in modes:
            t = _timed(lambda mode=mode: step(mode, record=False))
    # Interleaved: each repetition runs every mode once.
    for _ in range(big_reps if t > 1000 else reps):
        for mode in modes:
            step(mode, record=True)
    return times, shapes, getattr(base, "strides", ())


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 10 else f"{v:.1f}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", help="comma list of registry names (name@split for one split)")
    p.add_argument("--sizes", default="480x360,960x720", help="comma list of WxH")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (medians reported)")
    p.add_argument(
        "--big-reps", type=int, default=3, help="repetitions when a keyframe takes over 1 s"
    )
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--modes", default=",".join(MODES), help="comma list of execution modes")
    a = p.parse_args(argv)
    modes = tuple(m.strip() for m in a.modes.split(",") if m.strip())
    if not modes or any(m not in MODES for m in modes):
        p.error(f"--modes: choose from {', '.join(MODES)}")
    if a.warmup < 1:
        p.error("--warmup must be at least 1")
    if a.threads:
        torch.set_num_threads(a.threads)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in a.sizes.split(",")]
    models = _models(a.models.split(",") if a.models else None)

    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, python {platform.python_version()}",
        flush=True,
    )
    print(f"# warm-up {a.warmup}, reps {a.reps} ({a.big_reps} when a keyframe > 1 s)", flush=True)
    hdr = (
        f"| model | split | size | features (C@stride) | features ms {' / '.join(modes)} "
        f"| task ms {' / '.join(modes)} | warp ms {' / '.join(modes)} "
        f"| inter/key ({modes[-1]}) | speedup bound k={K} |"
    )
    print(hdr)
    print("|" + "---|" * (hdr.count("|") - 1))
    for w, h in sizes:
        for name, split in models:
            times, shapes, strides = bench_one(
                name, split, (w, h), a.reps, a.big_reps, a.warmup, modes
            )
            med = {m: {k: statistics.median(v) for k, v in times[m].items()} for m in modes}
            best = med[modes[-1]]
            key = best["features"] + best["task"]
            inter = best["warp"] + best["task"]
            bound = K * key / (key + (K - 1) * inter)
            feats = ", ".join(f"{s[0]}@{st}" for s, st in zip(shapes, strides, strict=False))

            def cols(part: str, med=med) -> str:
                return " / ".join(_fmt(med[m][part]) for m in modes)

            print(
                f"| {name} | {split or '-'} | {w}x{h} | {feats} | {cols('features')} "
                f"| {cols('task')} | {cols('warp')} | {100 * inter / key:.1f}% | {bound:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
