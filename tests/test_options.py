"""Options once: every keyword of the Python API is checked into one ``BmvsegError`` naming it
(issue 21, item 10), the keyframe interval is bounded (item 12), and the command line's defaults
are the library's."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path

import pytest

from bmvseg.cli.main import main
from bmvseg.cli.options import add_engine_arguments, add_scheme_arguments, run_options
from bmvseg.data.textures import smooth_texture
from bmvseg.errors import BmvsegError
from bmvseg.run import RunOptions, segment
from bmvseg.run.options import ENGINE_FIELDS
from bmvseg.schemes.config import MAX_INTERVAL, EngineConfig
from bmvseg.video.encode import encode_video


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("options") / "clip.mp4"
    encode_video([smooth_texture(48, 64, seed=1, scale=4.0)] * 3, path)
    return path


def _refused(call, keyword: str) -> str:
    with pytest.raises(BmvsegError) as exc:
        call()
    message = str(exc.value)
    assert keyword in message and "\n" not in message, message
    return message


@pytest.mark.parametrize(("keyword", "value"), [
    ("weights", 5), ("weights", ["a"]), ("fusion_weights", 5), ("timer", "x"),
    ("accumulate", "no"), ("interval", "5"), ("interval", True), ("keep_logits", 1),
    ("model", 3), ("stream", 1.0), ("max_interval", 2.5), ("device", 0),
])  # fmt: skip
def test_the_reported_keywords_are_refused_by_name(video, keyword, value) -> None:
    kw = {"weights": "none", keyword: value}
    _refused(lambda: list(segment(video, **kw)), keyword)


def _keywords() -> list[str]:
    own = [p.name for p in inspect.signature(segment).parameters.values()
           if p.kind is p.KEYWORD_ONLY]  # fmt: skip
    run = [f.name for f in dataclasses.fields(RunOptions) if f.name != "engine"]
    return sorted(set(own) | set(run) | set(ENGINE_FIELDS))


@pytest.mark.parametrize("keyword", _keywords())
def test_every_keyword_of_segment_is_type_checked(video, keyword) -> None:
    """A value of no type any keyword takes is refused by name, whatever the keyword: a keyword
    added later is checked without a list kept here."""
    kw = {"weights": "none", keyword: object()}
    _refused(lambda: list(segment(video, **kw)), keyword)


def test_a_misspelt_keyword_is_refused_not_dropped() -> None:
    _refused(lambda: RunOptions(intervall=3), "intervall")
    _refused(lambda: RunOptions(engine=EngineConfig(), **{"sheme": "prop-bmv"}), "sheme")


def test_options_are_frozen_and_replace_checks_again() -> None:
    opts = RunOptions(scheme="prop-bmv", interval=3)
    assert (opts.scheme, opts.interval, opts.engine.interval) == ("prop-bmv", 3, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.interval = 4  # type: ignore[misc]
    assert opts.replace(interval=4).interval == 4 and opts.interval == 3
    _refused(lambda: opts.replace(phase=3), "phase")


def test_the_interval_is_bounded() -> None:
    assert EngineConfig(interval=MAX_INTERVAL).interval == MAX_INTERVAL
    assert EngineConfig(interval=5, max_interval=MAX_INTERVAL, keyframes="adaptive")
    for kw in ({"interval": MAX_INTERVAL + 1}, {"max_interval": 10**9}, {"interval": 0},
               {"interval": 6, "max_interval": 5}):  # fmt: skip
        message = _refused(lambda kw=kw: EngineConfig(**kw), next(reversed(kw)))
        assert str(MAX_INTERVAL) in message


def test_the_command_line_refuses_a_huge_max_interval(video, tmp_path, capsys) -> None:
    argv = ["segment", str(video), "-o", str(tmp_path / "o"), "--weights", "none",
            "--keyframes", "adaptive", "--max-interval", "1000000000"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "max_interval" in err and str(MAX_INTERVAL) in err
    assert not (tmp_path / "o").exists()  # refused before anything was written


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_scheme_arguments(p)
    add_engine_arguments(p)
    return p


def test_command_line_defaults_are_the_library_defaults() -> None:
    assert run_options(_parser().parse_args([])) == RunOptions()


def test_every_command_line_option_reaches_the_options() -> None:
    args = _parser().parse_args([
        "--scheme", "prop-flow", "-k", "4", "--phase", "1", "--fusion", "max", "--keyframes",
        "adaptive", "--max-interval", "9", "--accumulate", "--flow-preset", "medium",
        "--label-stride", "2", "--weights", "none", "--device", "cpu", "--motion", "native",
        "--stream", "0", "--split", "s", "--fusion-weights", "f.pt", "--model", "m",
    ])  # fmt: skip
    opts = run_options(args)
    expected = RunOptions(model="m", weights=None, split="s", device="cpu", motion="native",
                          stream=0, fusion_weights="f.pt", scheme="prop-flow", interval=4,
                          phase=1, fusion="max", keyframes="adaptive", max_interval=9,
                          accumulate=True, flow_preset="medium", label_stride=2)  # fmt: skip
    assert opts == expected
    changed = {k for k, v in expected.identity().items() if v != RunOptions().identity()[k]}
    assert changed == set(expected.identity())  # not vacuous: every option differs from default
