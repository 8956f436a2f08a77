"""Command-line options shared by the subcommands, and their mapping onto
:class:`bmvseg.run.RunOptions` (the one place an option's name on the command line meets its
name in the library).  Defaults are read from :class:`RunOptions` and
:class:`~bmvseg.schemes.config.EngineConfig`, never written here; ``--help`` shows them.

One command line: the same flag means the same thing in every subcommand (``-o/--output``,
``-k/--interval``, ``--model``, ``--weights``, ``--device``, ``--threads``, and the progress
flags of :func:`add_progress_arguments`).  Every option's help names its default or says it is
required (:class:`HelpFormatter` adds ``(default: X)`` where the text does not; an option whose
default is None must say in words what None means).
"""

from __future__ import annotations

import argparse

from bmvseg import progress
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
    "interval": "interval", "phase": "phase", "fusion": "fusion", "palette": "palette",
}  # fmt: skip
SCHEME_DESTS = ("scheme", "interval", "phase", "fusion")  # add_scheme_arguments's


class HelpFormatter(argparse.HelpFormatter):
    """Examples (text with line breaks: the epilog) kept as written, descriptions wrapped;
    ``(default: X)`` added to an option's help where the text names no default and the
    default is a value (not None, not a flag's False)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (names_default(text) or action.default is None
                or action.default is argparse.SUPPRESS or action.nargs == 0):  # fmt: skip
            return text
        return f"{text} (default: %(default)s)"


def names_default(help_text: str) -> bool:
    """Whether an option's help already says its default, or that it is required."""
    lowered = help_text.lower()
    return "(default" in lowered or "default:" in lowered or "required" in lowered


def add_interval_argument(p: argparse.ArgumentParser, default: int, what: str) -> None:
    """``-k/--interval`` (``--keyframe-interval`` kept as an alias): one keyframe interval."""
    p.add_argument("-k", "--interval", "--keyframe-interval", dest="interval", type=int,
                   default=default, metavar="N", help=what)  # fmt: skip


def add_threads_argument(p: argparse.ArgumentParser, default: int | None = None) -> None:
    """``--threads``: torch's intra-op threads for this process."""
    p.add_argument("--threads", type=int, default=default, metavar="T",
                   help="torch threads" + ("" if default is not None else
                   " (default: torch's own choice, one per core)"))  # fmt: skip


def set_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (None: leave torch's own choice)."""
    if getattr(args, "threads", None) is not None:
        import torch

        from bmvseg.errors import BmvsegError

        if args.threads < 1:
            raise BmvsegError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)


def add_progress_arguments(p: argparse.ArgumentParser) -> None:
    """``--no-progress``, ``-q/--quiet``, ``--progress-every`` (see :mod:`bmvseg.progress`)."""
    g = p.add_argument_group("progress (on standard error)")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bar and no progress lines (default: a bar on a terminal, "
                   f"else a line every {progress.LINE_EVERY_S:g} s)")  # fmt: skip
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress and no notices; errors and the closing line stay")
    g.add_argument("--progress-every", type=float, default=progress.LINE_EVERY_S, metavar="S",
                   help="when standard error is not a terminal, one progress line every S "
                   "seconds")  # fmt: skip


def configure_progress(args: argparse.Namespace) -> None:
    """The progress mode of the whole process, from the parsed flags."""
    quiet = getattr(args, "quiet", False) or getattr(args, "no_progress", False)
    progress.configure(enabled=not quiet,
                       every=getattr(args, "progress_every", progress.LINE_EVERY_S))  # fmt: skip


def notice(args: argparse.Namespace, text: str) -> None:
    """A one-line notice on standard output, unless ``--quiet``."""
    if not getattr(args, "quiet", False):
        print(f"bmvseg: notice: {text}", flush=True)


def add_scheme_arguments(p: argparse.ArgumentParser) -> None:
    """The scheme of one run (``segment``; the benchmark sweeps schemes and intervals)."""
    p.add_argument("--scheme", choices=SCHEMES, default=ENGINE.scheme,
                   help="how frames between keyframes are labelled (default: %(default)s)")
    add_interval_argument(p, ENGINE.interval,
                          f"keyframe interval, 1..{MAX_INTERVAL} (default: %(default)s)")
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
    fallback = model_default or f"synthetic_demo with --dataset synthetic, else {RUN.model}"
    p.add_argument("--model", default=model_default,
                   help="a registered name, path/to/model.py:function (your own code, run as "
                   f"code), or a name an installed package announces (default: {fallback})")
    p.add_argument("--weights", default=RUN.weights,
                   help="'default' (shipped weights), a checkpoint path, a Hugging Face hub id or "
                   "save_pretrained directory (segformer), or 'none' (random) "
                   "(default: %(default)s)")
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
                   help="compose motion and warp once per frame instead of chaining warps "
                   "(default: chain)")
    p.add_argument("--label-stride", type=int, default=ENGINE.label_stride, metavar="R",
                   help="arg-max at 1/R resolution, labels upsampled by nearest "
                   "(default %(default)s: exact)")
    p.add_argument("--keyframes", choices=PLACEMENTS, default=ENGINE.keyframes,
                   help="keyframe placement: every N frames, or where the stream shows change "
                   "under the same budget (default: %(default)s)")
    p.add_argument("--max-interval", type=int, metavar="M",
                   help=f"adaptive placement and --keep-up: longest interval, at most "
                   f"{MAX_INTERVAL} (default: 2N)")


def run_options(args: argparse.Namespace, **override) -> RunOptions:
    """The parsed options (those this command has) as a checked :class:`RunOptions`."""
    given = {key: getattr(args, dest) for dest, key in OPTION_NAMES.items()
             if dest not in SCHEME_DESTS or hasattr(args, dest)}  # fmt: skip
    given["model"] = given.get("model") or RUN.model
    if given.get("weights") == "none":
        given["weights"] = None
    return RunOptions(**{**given, **override})
