"""The README's command lines cannot drift: each parses with the real parser, and the cheap
ones (``segment`` of one video or a folder in this process, ``motion``) run on a small clip."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from bmvseg.cli.main import build_parser, main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.run.frame_range import resolve
from bmvseg.run.live import live_input
from bmvseg.video.encode import X264_ONE_REF, encode_video

README = Path(__file__).resolve().parents[1] / "README.md"
FPS, FRAMES = 10, 50  # the stand-in clip: 5 s
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def readme_commands() -> list[list[str]]:
    """Every ``bmvseg ...`` command of README.md's shell code blocks, as argv (comments and
    the set-up steps before ``&&`` dropped)."""
    found = []
    for lang, body in FENCE.findall(README.read_text()):
        if lang not in ("", "bash", "sh", "console"):
            continue
        for line in body.splitlines():
            for piece in line.split("&&"):
                words = shlex.split(piece, comments=True)
                if words[:1] == ["bmvseg"]:
                    found.append(words[1:])
    return found


COMMANDS = readme_commands()


def test_the_readme_has_commands_of_every_kind():
    names = {argv[0] for argv in COMMANDS}
    assert {"demo", "segment", "motion", "benchmark", "train", "train-fusion",
            "evaluate"} <= names  # fmt: skip


@pytest.mark.parametrize("argv", COMMANDS, ids=shlex.join)
def test_each_readme_command_parses(argv):
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed why
        pytest.fail(f"README command does not parse (exit {exc.code}): bmvseg {shlex.join(argv)}")
    assert callable(args.func)


def _cheap(argv: list[str]) -> bool:
    """Runs here in seconds: one process, inputs a small clip can stand for."""
    if argv[0] == "motion":
        return True
    if argv[0] != "segment" or len(argv) < 2:
        return False
    live = live_input(argv[1]) or argv[1].startswith("/dev/")  # camera, pipe, URL: test_live_run
    return not live and not {
        "--workers", "--ray-address", "--model"} & set(argv)  # fmt: skip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    frames = moving_texture_clip("object", 64, 96, FRAMES, seed=3, speed=1.5)[0]
    encode_video(frames, path, fps=FPS, options=X264_ONE_REF)
    return path


@pytest.mark.parametrize("argv", [a for a in COMMANDS if _cheap(a)], ids=shlex.join)
def test_cheap_readme_commands_run(argv, clip, tmp_path, monkeypatch, capsys):
    """Each in a folder of its own holding what it names as input (videos are the clip)."""
    monkeypatch.chdir(tmp_path)
    for word in argv[1:]:
        if word.endswith("/") and argv[argv.index(word) - 1] not in ("-o", "--output"):
            folder = tmp_path / word
            folder.mkdir()
            for name in ("a.mp4", "b.mp4"):
                shutil.copy(clip, folder / name)
        elif word.endswith(".mp4") and argv[argv.index(word) - 1] not in ("--draw",):
            shutil.copy(clip, tmp_path / word)
    assert main([*argv, "--no-progress"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.strip(), "a command that ran says what it wrote"
    if argv[0] == "segment" and not (tmp_path / argv[1]).is_dir():  # the frames asked, exactly
        args = build_parser().parse_args(argv)
        first, stop = resolve(args.start, args.end, args.max_frames, FPS)
        labels = sorted(p.name for p in (tmp_path / args.output / "labels").iterdir())
        assert labels == [f"{i:06d}.png" for i in range(first, stop or FRAMES)]
