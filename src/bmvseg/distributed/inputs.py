"""Which videos a job segments, and the output folder each one gets.

Inputs are files, folders (searched recursively for video file names, hidden files skipped) and
glob patterns (``**`` allowed).  The list is ordered as given, each folder or pattern's matches
sorted, a file named twice kept once.  An input that names nothing is the user's mistake and
stops the job before anything runs; a file that is not a readable video is left for the job to
report with the other videos' states.

Output names are the file names without extension, with leading dots dropped (a name that is
nothing but dots becomes ``video``), so a folder name is never hidden, ``.`` or ``..``, and
never one of the job's own files (``job.json``, the run record, a ``.partial-`` temporary).
Names that clash (with each other or with the job's files, case-insensitively, so that a job's
output survives a case-insensitive filesystem) get ``-2``, ``-3``, ... in input order; the job
records both names.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from bmvseg.errors import BmvsegError
from bmvseg.output.layouts import LAYOUTS

VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .wmv .mpg .mpeg .m2v .ts .mts .m2ts .3gp .ogv .y4m "
    ".h264 .264 .h265 .265 .hevc .ivf".split()
)
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class VideoInput:
    """One video of a job and the name of its output folder."""

    path: Path
    name: str  # output folder name, unique in the job
    stem: str  # the file name without extension (differs from ``name`` after a clash)


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def _inside(path: Path, folder: Path | None) -> bool:
    return folder is not None and (path == folder or folder in path.parents)


def expand_inputs(specs: list[str | os.PathLike], exclude: Path | None = None) -> list[Path]:
    """The video files ``specs`` name, in order, each once; files under ``exclude`` left out.

    ``exclude`` is the job's output folder, so that a job writing inside its input folder does not
    pick up its own overlays on the next run.
    """
    skip = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    seen: set[Path] = set()
    for spec in specs:
        text = os.fspath(spec)
        path = Path(text)
        if path.is_dir():
            matches = sorted(
                p for p in path.rglob("*")
                if p.is_file() and _is_video_name(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )  # fmt: skip
            if not matches:
                raise BmvsegError(f"{text}: folder holds no video files ({_suffix_hint()})")
        elif any(c in text for c in _GLOB_CHARS) and not path.exists():
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise BmvsegError(f"{text}: pattern matches no files")
        elif path.is_file():
            matches = [path]
        else:
            raise BmvsegError(f"{text}: no such file or folder")
        for m in matches:
            key = m.resolve()
            if key in seen or _inside(key, skip):
                continue
            seen.add(key)
            found.append(m)
    if not found:
        raise BmvsegError("no input videos (every match lies inside the output folder)")
    return found


def _suffix_hint() -> str:
    return "looked for " + ", ".join(sorted(VIDEO_SUFFIXES)[:6]) + ", ..."


def names_a_set(specs: list[str | os.PathLike]) -> bool:
    """Whether ``specs`` name a set of videos (a folder or a pattern) rather than files: such a
    job keeps the per-video layout even when the set holds one video, so that a video added
    later joins it on ``--resume``."""
    for spec in specs:
        text, path = os.fspath(spec), Path(spec)
        if path.is_dir() or (any(c in text for c in _GLOB_CHARS) and not path.exists()):
            return True
    return False


RESERVED = frozenset(n.casefold() for n in LAYOUTS["job"].files)  # the job folder's own files


def assign_names(paths: list[Path]) -> list[VideoInput]:
    """Each path with a unique output folder name: its stem, or ``stem-2``, ... after a clash."""
    taken: set[str] = set(RESERVED)
    out = []
    for p in paths:
        base = p.stem.lstrip(".") or "video"
        name, n = base, 1
        while name.casefold() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.casefold())
        out.append(VideoInput(path=p, name=name, stem=p.stem))
    return out
