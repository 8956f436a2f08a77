"""The ``bmvseg`` command: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func`` to a handler taking the parsed arguments and returning an exit status.  User errors
(:class:`bmvseg.errors.BmvsegError`) become one line on stderr and a non-zero exit.

What happens to the terminal must not change what happened to the files, so :func:`main` also
makes the console safe for the whole run:

* stdout/stderr never raise on a file name that is not valid in their encoding (a non-UTF-8
  name arrives as lone surrogates, and a strict UTF-8 stdout would raise): it is written
  backslash-escaped;
* a reader that goes away (``bmvseg segment ... | head -1``, ``| true``) does not stop the run:
  further output is dropped (the "Note on SIGPIPE" recipe of the Python docs: the descriptor is
  pointed at ``os.devnull``), the run finishes, and its exit status is the run's;
* Ctrl-C at any moment of ``main``, the first seconds of imports included, is one line and
  exit status 130.  This module imports nothing heavy, so it is inside ``main`` that torch and
  the subcommands are imported.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import shlex
import signal
import sys
from typing import TextIO

from bmvseg.errors import BmvsegError

# Subcommand modules, in the order ``bmvseg --help`` lists them.
COMMANDS = ("demo", "motion", "train", "evaluate", "segment", "benchmark", "train-fusion")
INTERRUPTED = 130  # 128 + SIGINT, what shells report for a command stopped by Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    """The ``bmvseg`` parser with every subcommand of COMMANDS."""
    from bmvseg.cli.options import HelpFormatter

    parser = argparse.ArgumentParser(
        prog="bmvseg",
        description="Fast video segmentation by warping keyframe features with the block "
        "motion vectors of compressed video.",
        epilog="examples:\n  bmvseg demo\n  bmvseg segment video.mp4 -o out/\n"
        "  bmvseg segment --help",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bmvseg {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"bmvseg.cli.{name.replace('-', '_')}").register(sub)
    for subparser in sub.choices.values():  # one help layout: defaults shown, examples as written
        subparser.formatter_class = HelpFormatter
    return parser


def version() -> str:
    """The installed package's version (the source tree's when it runs uninstalled)."""
    from importlib import metadata

    try:
        return metadata.version("bmvseg")
    except metadata.PackageNotFoundError:
        from bmvseg import __version__

        return __version__


class _Console:
    """A text stream that never raises because its reader left or a name cannot be encoded."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[attr-defined]
        except (AttributeError, ValueError, OSError):
            pass  # not a TextIOWrapper: encoding errors are handled in write()

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self._stream.write(text)
        except UnicodeEncodeError:
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            safe = text.encode(encoding, "backslashreplace").decode(encoding)
            return self._guard(lambda: self._stream.write(safe), len(text))
        except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
            self._drop()
            return len(text)

    def flush(self) -> None:
        self._guard(self._stream.flush, None)

    def _guard(self, call, default):  # type: ignore[no-untyped-def]
        if self.broken:
            return default
        try:
            return call()
        except (BrokenPipeError, ValueError):
            self._drop()
            return default

    def _drop(self) -> None:
        """From now on this stream goes nowhere, also for the interpreter's flush at exit."""
        self.broken = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one subcommand; user errors are one line and a non-zero exit."""
    try:  # first: a Ctrl-C that lands anywhere below is still one line
        return _main(argv)
    except KeyboardInterrupt:
        _interrupted("bmvseg")
        return INTERRUPTED


def _main(argv: list[str] | None) -> int:
    out, err = sys.stdout, sys.stderr
    command = "bmvseg"
    try:
        sys.stdout, sys.stderr = _Console(out), _Console(err)  # type: ignore[assignment]
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            command = f"bmvseg {args.command}"
            from bmvseg.cli.options import configure_progress  # imported by now (torch)

            configure_progress(args)
            # What ran, as a shell line (recorded in summaries), whoever called main().
            args.command_line = shlex.join(["bmvseg", *(sys.argv[1:] if argv is None else argv)])
            return int(args.func(args) or 0)
        except BmvsegError as exc:
            print(f"{command}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            _interrupted(command)
            return INTERRUPTED
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except KeyboardInterrupt:
                pass
    except KeyboardInterrupt:  # a second Ctrl-C while reporting the first
        _interrupted(command)
        return INTERRUPTED
    finally:
        sys.stdout, sys.stderr = out, err


def _interrupted(command: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the line is written whole
    try:
        print(f"{command}: interrupted", file=sys.stderr)
        sys.stderr.flush()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
