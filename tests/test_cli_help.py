"""One command line: every option of every subcommand says its default or that it is required,
every subcommand has a description and examples, the shared flags mean the same everywhere."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from bmvseg.cli.main import COMMANDS, build_parser, main
from bmvseg.cli.options import names_default


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_names_its_default_or_that_it_is_required(command):
    p = _subparsers()[command]
    text = p.format_help()
    for action in p._actions:
        if action.help == argparse.SUPPRESS or action.nargs == 0:
            continue  # hidden aliases; flags (off unless given)
        formatter = p._get_formatter()
        help_text = formatter._expand_help(action) if action.help else ""
        assert names_default(help_text), (command, action.option_strings or action.dest,
                                          help_text)  # fmt: skip
        assert "default: None)" not in help_text, (command, action.dest, help_text)
    assert p.description and "examples:" in (p.epilog or ""), command
    assert re.search(rf"^\s+bmvseg {command}\b", text, re.M), f"{command} --help shows no example"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_example_in_a_help_parses(command):
    examples = [shlex.split(line, comments=True)[1:]
                for line in _subparsers()[command].epilog.splitlines()
                if line.strip().startswith("bmvseg ")]  # fmt: skip
    assert examples
    for argv in examples:
        assert callable(build_parser().parse_args(argv).func), argv


def test_the_same_flag_means_the_same_thing_everywhere():
    subs = _subparsers()
    for name, p in subs.items():
        strings = {s: a for a in p._actions for s in a.option_strings}
        if "-o" in strings:
            assert "--output" in strings["-o"].option_strings, name
        if "-k" in strings:
            assert {"--interval", "--keyframe-interval"} <= set(strings["-k"].option_strings)
        for long in ("--threads", "--no-progress", "--quiet"):
            if name != "motion" or long != "--threads":
                assert long in strings, (name, long)


def test_old_names_still_parse():
    parser = build_parser()
    args = parser.parse_args(["train", "--out", "runs/x"])
    assert args.out == "runs/x"
    assert parser.parse_args(["train", "-o", "runs/y"]).out == "runs/y"
    args = parser.parse_args(["segment", "v.mp4", "-o", "o", "--keyframe-interval", "7"])
    assert args.interval == 7
    assert parser.parse_args(["demo", "--interval", "3"]).interval == 3


def test_version(capsys):
    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert re.fullmatch(r"bmvseg \d+\.\d+\S*\n", capsys.readouterr().out)


def test_train_without_an_output_is_one_line(capsys):
    assert main(["train", "--root", "nowhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "-o/--output" in err


def test_evaluate_refuses_an_unknown_device_in_one_line(capsys):
    assert main(["evaluate", "--device", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nosuch" in err
