"""Command-line options of a run, shared by ``segment`` and ``benchmark``, and their mapping
onto :class:`bmvseg.run.RunOptions` (the one place an option's name on the command line meets
its name in the library)."""

from __future__ import annotations

import argparse

from bmvseg.run.options import DEFAULT_MODEL, RunOptions
from bmvseg.schemes.engine import DIS_PRESETS
from bmvseg.schemes.keyframes import PLACEMENTS
from bmvseg.video.reader import POLICIES


def add_engine_arguments(p: argparse.ArgumentParser, *, model_default: str | None = DEFAULT_MODEL
                         ) -> None:  # fmt: skip
    """Model and scheme options shared by ``segment`` and ``benchmark``."""
    p.add_argument("--model", default=model_default,
                   help="a registered name, path/to/model.py:function (your own code, run as "
                   "code), or a name an installed package announces (default: %(default)s)")
    p.add_argument("--weights", default="default",
                   help="'default' (shipped weights), a checkpoint path, a Hugging Face hub id or "
                   "save_pretrained directory (segformer), or 'none' (random)")
    p.add_argument("--split", help="where the model is cut into feature and task network; the "
                   "choices depend on the model (default: its own; see bench/RESULTS-models.md)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--motion", choices=POLICIES, default="auto", help="motion source policy")
    p.add_argument("--stream", type=int, metavar="N",
                   help="video stream number (default: the largest / the default one)")
    p.add_argument("--fusion-weights",
                   help="conv-fusion checkpoint (default: beside the model's weights)")
    p.add_argument("--flow-preset", choices=sorted(DIS_PRESETS), default="fast",
                   help="OpenCV DIS preset for prop-flow (default: %(default)s)")
    p.add_argument("--accumulate", action="store_true",
                   help="compose motion and warp once per frame instead of chaining warps")
    p.add_argument("--label-stride", type=int, default=1, metavar="R",
                   help="arg-max at 1/R resolution, labels upsampled by nearest (default 1: exact)")
    p.add_argument("--keyframes", choices=PLACEMENTS, default="fixed",
                   help="keyframe placement: every N frames, or where the stream shows change "
                   "under the same budget (default: %(default)s)")
    p.add_argument("--max-interval", type=int, metavar="M",
                   help="adaptive placement: longest interval (default: 2N)")


def run_options(args: argparse.Namespace, **override) -> RunOptions:
    """The parsed options as a validated :class:`RunOptions`."""
    opts = RunOptions(
        model=args.model or DEFAULT_MODEL,
        weights=None if args.weights == "none" else args.weights,
        split=args.split,
        device=args.device,
        motion=args.motion,
        stream=args.stream,
        scheme=getattr(args, "scheme", "inter-bmv"),
        interval=getattr(args, "keyframe_interval", 5),
        phase=getattr(args, "phase", 0),
        fusion=getattr(args, "fusion", "avg"),
        fusion_weights=args.fusion_weights,
        keyframes=args.keyframes,
        max_interval=args.max_interval,
        accumulate=args.accumulate,
        flow_preset=args.flow_preset,
        label_stride=args.label_stride,
    )
    for key, value in override.items():
        setattr(opts, key, value)
    if opts.model:  # the benchmark picks its model from the dataset when none is named
        opts.validate()
    return opts
