"""Command-line options of a run, shared by ``segment`` and ``benchmark``, and their mapping
onto :class:`bmvseg.run.RunOptions` (the one place an option's name on the command line meets
its name in the library).  Defaults are read from :class:`RunOptions` and
:class:`~bmvseg.schemes.config.EngineConfig`, never written here; ``--help`` shows them.
"""

from __future__ import annotations

import argparse

from bmvseg.run.options import RunOptions
from bmvseg.schemes.config import MAX_INTERVAL, EngineConfig
from bmvseg.schemes.fusion import FUSIONS
from bmvseg.schemes.keyframes import PLACEMENTS
from bmvseg.schemes.optical_flow import DIS_PRESETS
from bmvseg.schemes.registry import SCHEMES, fusing_schemes, scheme_traits
from bmvseg.video.motion_source import POLICIES

ENGINE = EngineConfig()  # the defaults
RUN = RunOptions()
# Command-line destination -> RunOptions keyword, for every option whose names differ or that
# only some commands have; RunOptions refuses a keyword it does not know, so a renamed field
# fails here at once instead of being dropped.
OPTION_NAMES = {
    "model": "model", "weights": "weights", "split": "split", "device": "device",
    "motion": "motion", "stream": "stream", "fusion_weights": "fusion_weights",
    "flow_preset": "flow_preset", "accumulate": "accumulate", "label_stride": "label_stride",
    "keyframes": "keyframes", "max_interval": "max_interval", "scheme": "scheme",
    "keyframe_interval": "interval", "phase": "phase", "fusion": "fusion", "palette": "palette",
}  # fmt: skip
SCHEME_DESTS = ("scheme", "keyframe_interval", "phase", "fusion")  # add_scheme_arguments's


def add_scheme_arguments(p: argparse.ArgumentParser) -> None:
    """The scheme of one run (``segment``; the benchmark sweeps schemes and intervals)."""
    p.add_argument("--scheme", choices=SCHEMES, default=ENGINE.scheme,
                   help="how frames between keyframes are labelled (default: %(default)s)")
    p.add_argument("-k", "--keyframe-interval", type=int, default=ENGINE.interval, metavar="N",
                   help=f"keyframe interval, 1..{MAX_INTERVAL} (default: %(default)s)")
    p.add_argument("--phase", type=int, default=ENGINE.phase,
                   help="fixed placement: keyframes at frames phase, phase + N, ... "
                   "(default: %(default)s)")
    p.add_argument("--fusion", choices=FUSIONS, default=ENGINE.fusion,
                   help=f"fusion of {', '.join(fusing_schemes())} (default %(default)s: max, "
                   "the paper's literal reading, collapses on models with signed features; "
                   "conv needs trained weights)")


def add_engine_arguments(p: argparse.ArgumentParser, *, model_default: str | None = RUN.model
                         ) -> None:  # fmt: skip
    """Model and engine options shared by ``segment`` and ``benchmark``."""
    traits = {s: scheme_traits(s) for s in SCHEMES}
    flow = [s for s, t in traits.items() if t.uses_interval and t.needs_pictures]
    p.add_argument("--model", default=model_default,
                   help="a registered name, path/to/model.py:function (your own code, run as "
                   "code), or a name an installed package announces (default: %(default)s)")
    p.add_argument("--weights", default=RUN.weights,
                   help="'default' (shipped weights), a checkpoint path, a Hugging Face hub id or "
                   "save_pretrained directory (segformer), or 'none' (random)")
    p.add_argument("--split", help="where the model is cut into feature and task network; the "
                   "choices depend on the model (default: its own; see bench/RESULTS-models.md)")
    p.add_argument("--device", default=RUN.device,
                   help="torch device, e.g. cpu or cuda (default: %(default)s)")
    p.add_argument("--palette", metavar="FILE.json",
                   help='the overlay\'s colours: a JSON object of class id or name -> [r, g, b], '
                   'e.g. {"road": [128, 64, 128], "3": [0, 0, 255]} (default: the model\'s own)')
    p.add_argument("--motion", choices=POLICIES, default=RUN.motion,
                   help="motion source policy (default: %(default)s)")
    p.add_argument("--stream", type=int, metavar="N",
                   help="video stream number (default: the largest / the default one)")
    p.add_argument("--fusion-weights",
                   help="conv-fusion checkpoint (default: beside the model's weights)")
    p.add_argument("--flow-preset", choices=sorted(DIS_PRESETS), default=ENGINE.flow_preset,
                   help=f"OpenCV DIS preset for {', '.join(flow)} (default: %(default)s)")
    p.add_argument("--accumulate", action="store_true",
                   help="compose motion and warp once per frame instead of chaining warps")
    p.add_argument("--label-stride", type=int, default=ENGINE.label_stride, metavar="R",
                   help="arg-max at 1/R resolution, labels upsampled by nearest "
                   "(default %(default)s: exact)")
    p.add_argument("--keyframes", choices=PLACEMENTS, default=ENGINE.keyframes,
                   help="keyframe placement: every N frames, or where the stream shows change "
                   "under the same budget (default: %(default)s)")
    p.add_argument("--max-interval", type=int, metavar="M",
                   help=f"adaptive placement: longest interval, at most {MAX_INTERVAL} "
                   "(default: 2N)")


def run_options(args: argparse.Namespace, **override) -> RunOptions:
    """The parsed options (those this command has) as a checked :class:`RunOptions`."""
    given = {key: getattr(args, dest) for dest, key in OPTION_NAMES.items()
             if dest not in SCHEME_DESTS or hasattr(args, dest)}  # fmt: skip
    given["model"] = given.get("model") or RUN.model
    if given.get("weights") == "none":
        given["weights"] = None
    return RunOptions(**{**given, **override})
