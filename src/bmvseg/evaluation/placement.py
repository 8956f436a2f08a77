"""Fixed against adaptive keyframe placement at the same keyframe budget (issue: keyframes where
the video changes).

Fixed placement is scored at phase 0 here (what ``bmvseg segment -k n`` runs), adaptive placement
as it runs; both are whole streaming runs of :class:`~bmvseg.schemes.engine.Engine` over the clip,
scored on its labelled (or, with the per-frame reference, all) frames.  "avg" pools every scored
frame; "min" is the worst offset, pooling the frames ``p`` frames after their previous keyframe
for each ``p`` (the paper's min, where the frames farthest from a keyframe lose most).

:func:`agreement_with_per_frame` scores footage without labels (real clips with cuts): each
frame's share of pixels labelled as the per-frame model labels it, its mean over the clip and its
worst frame, for fixed placement with and without its cut test (the placement before the cut test
applied to it) and the adaptive placements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from bmvseg.evaluation.metrics import ConfusionMatrix
from bmvseg.evaluation.sweep import Variant
from bmvseg.models.base import SegmentationModel
from bmvseg.schemes.engine import Engine, EngineConfig
from bmvseg.schemes.fusion import ConvFusion
from bmvseg.schemes.keyframes import PLACEMENTS, FixedSchedule, KeyframeSchedule
from bmvseg.schemes.registry import reference_scheme
from bmvseg.video.frame import Frame
from bmvseg.video.reader import VideoReader

PLACEMENT_COLUMNS = ("clip", "scheme", "fusion", "interval", "placement", "keyframes", "budget",
                     "miou_avg", "miou_min")  # fmt: skip


@torch.inference_mode()
def compare_placements(
    model: SegmentationModel,
    video,
    targets: dict[int, np.ndarray],
    variants: Sequence[Variant],
    intervals: Sequence[int],
    *,
    clip_name: str,
    conv: ConvFusion | None = None,
    config: dict | None = None,
    end: int | None = None,
) -> list[dict]:
    """One row per (variant, interval, placement); ``targets`` maps frame index -> labels."""
    rows = []
    with VideoReader(video) as reader:
        frames = list(reader.frames(end=end))
    T = len(frames)
    for v in variants:
        if not v.traits.uses_interval:
            continue
        for n in intervals:
            if n < 2:
                continue
            for placement in PLACEMENTS:
                cfg = EngineConfig(**v.engine_options(), interval=n, keyframes=placement,
                                   **(config or {}))  # fmt: skip
                results = Engine(model, cfg, conv).run(iter(frames))
                by_offset: dict[int, ConfusionMatrix] = defaultdict(
                    lambda: ConfusionMatrix(model.num_classes)
                )
                keys = 0
                for res in results:
                    keys += res.keyframe
                    if res.index in targets:
                        by_offset[res.offset].update(res.labels, targets[res.index])
                pooled = ConfusionMatrix(model.num_classes)
                for cm in by_offset.values():
                    pooled.merge(cm)
                worst = min((cm.miou() for p, cm in by_offset.items() if p), default=np.nan)
                rows.append({
                    "clip": clip_name, "scheme": v.scheme, "fusion": v.fusion, "interval": n,
                    "placement": placement, "keyframes": keys, "budget": -(-T // n) + 1,
                    "miou_avg": round(100 * pooled.miou(), 2), "miou_min": round(100 * worst, 2),
                })  # fmt: skip
    return rows


def placement_md(rows: list[dict], note: str) -> str:
    """Fixed vs adaptive, side by side per clip, scheme and interval."""
    head = ("| clip | scheme | n | keyframes fixed / adaptive / lean (budget) | avg fixed | "
            "avg adaptive | avg lean | min fixed | min adaptive | min lean |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")  # fmt: skip
    pairs: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        pairs[r["clip"], r["scheme"], r["fusion"], r["interval"]][r["placement"]] = r
    lines = []
    for (clip, scheme, fusion, n), p in pairs.items():
        f, a, le = p["fixed"], p["adaptive"], p["adaptive-lean"]
        name = scheme + (f" ({fusion})" if fusion else "")
        lines.append(f"| {clip} | {name} | {n} | {f['keyframes']} / {a['keyframes']} / "
                     f"{le['keyframes']} ({f['budget']}) | {f['miou_avg']:.1f} | "
                     f"{a['miou_avg']:.1f} | {le['miou_avg']:.1f} | {f['miou_min']:.1f} | "
                     f"{a['miou_min']:.1f} | {le['miou_min']:.1f} |")  # fmt: skip
    return note + "\n\n" + head + "\n".join(lines) + "\n"


AGREEMENT_COLUMNS = ("clip", "scheme", "interval", "placement", "keyframes", "budget",
                     "agree_mean", "agree_min", "worst_frame", "cuts")  # fmt: skip
NO_CUT_TEST = "fixed-no-cut-test"  # fixed placement as it was before the cut test applied to it


def _schedule(name: str, n: int) -> KeyframeSchedule | None:
    """The schedule to run for placement ``name`` (None: the engine's for ``keyframes=name``)."""
    return FixedSchedule(n, cut_valid=0.0, iframe_valid=0.0) if name == NO_CUT_TEST else None


@torch.inference_mode()
def agreement_with_per_frame(
    model: SegmentationModel,
    frames: Sequence[Frame],
    intervals: Sequence[int],
    *,
    clip_name: str,
    scheme: str = "inter-bmv",
    fusion: str = "avg",
    placements: Sequence[str] = (NO_CUT_TEST, *PLACEMENTS),
    done: Callable[[dict], None] = lambda row: None,
) -> list[dict]:
    """One row per (interval, placement): agreement with the per-frame model on every frame.

    ``cuts`` lists each frame the run marked a cut, with its keyframe reasons (``-``: none);
    ``done`` is given each row as soon as it is measured.
    """
    per_frame = Engine(model, EngineConfig(scheme=reference_scheme()))
    reference = {r.index: r.labels for r in per_frame.run(iter(frames))}
    rows = []
    for n in intervals:
        for name in placements:
            schedule = _schedule(name, n)
            cfg = EngineConfig(scheme=scheme, fusion=fusion, interval=n,
                               keyframes="fixed" if schedule else name)  # fmt: skip
            agree: dict[int, float] = {}
            keys, cuts = 0, []
            for r in Engine(model, cfg).run(iter(frames), schedule=schedule):
                agree[r.index] = float(np.mean(r.labels == reference[r.index]))
                keys += r.keyframe
                if r.cut:
                    cuts.append(f"{r.index}:{'+'.join(r.reasons) or '-'}")
            worst = min(agree, key=agree.__getitem__)
            rows.append({
                "clip": clip_name, "scheme": scheme, "interval": n, "placement": name,
                "keyframes": keys, "budget": -(-len(frames) // n) + 1,
                "agree_mean": round(float(np.mean(list(agree.values()))), 4),
                "agree_min": round(agree[worst], 4), "worst_frame": worst, "cuts": " ".join(cuts),
            })  # fmt: skip
            done(rows[-1])
    return rows


def agreement_md(rows: list[dict], note: str) -> str:
    """One line per clip, interval and placement: keyframes, mean and worst agreement."""
    head = ("| clip | n | placement | keyframes (budget) | mean agreement | worst frame | "
            "cuts: frame:reasons |\n|---|---|---|---|---|---|---|\n")  # fmt: skip
    lines = [f"| {r['clip']} | {r['interval']} | {r['placement']} | {r['keyframes']} "
             f"({r['budget']}) | {r['agree_mean']:.3f} | {r['agree_min']:.3f} "
             f"(frame {r['worst_frame']}) | {r['cuts']} |" for r in rows]  # fmt: skip
    return note + "\n\n" + head + "\n".join(lines) + "\n"
