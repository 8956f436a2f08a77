"""The ``bmvseg`` command: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func`` to a handler taking the parsed arguments and returning an exit status.  User errors
(:class:`bmvseg.errors.BmvsegError`) become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bmvseg.errors import BmvsegError

# Subcommand modules, in the order ``bmvseg --help`` lists them.
COMMANDS = ("demo", "motion", "train", "evaluate", "segment", "benchmark", "train-fusion")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bmvseg",
        description="Fast video segmentation by warping keyframe features with the block "
        "motion vectors of compressed video.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"bmvseg.cli.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BmvsegError as exc:
        print(f"bmvseg {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"bmvseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
