"""A video's output folder as the distributed driver writes it: never half-true, never more.

Same layout and promises as ``bmvseg segment``'s: every file is written under a temporary name
and renamed into place (a file that exists is complete), ``summary.json`` comes last.  Replacing
an earlier output (``overwrite``) removes only the entries this layout writes, never anything
else the folder holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from bmvseg.errors import BmvsegError

TMP_PREFIX = ".partial-"
CHUNK_DIR = ".chunks"  # finished chunks' markers and overlay pieces, removed when complete
_LABEL = re.compile(r"\d{6}\.png")
_OWN_FILES = ("overlay.mp4", "run.json", "summary.json", "job.json")


def write_atomic(final: Path, data: bytes) -> None:
    """``data`` to ``final`` through a temporary name in the same folder."""
    tmp = final.with_name(TMP_PREFIX + final.name)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BmvsegError(f"cannot write {final}: {exc.strerror or exc}") from exc


def write_json(final: Path, obj: dict[str, Any]) -> None:
    write_atomic(final, json.dumps(obj, indent=2, default=str).encode())


def read_json(path: Path) -> dict | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def holds_output(path: Path) -> bool:
    if path.exists() and not path.is_dir():
        raise BmvsegError(f"{path} exists and is not a directory")
    return path.is_dir() and any(path.iterdir())


def remove_own(path: Path) -> None:
    """Entries of this layout (labels, overlay, records, chunk state); nothing else."""
    for name in _OWN_FILES:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / CHUNK_DIR, ignore_errors=True)
    labels = path / "labels"
    if labels.is_dir():
        for f in labels.iterdir():
            if _LABEL.fullmatch(f.name) or f.name.startswith(TMP_PREFIX):
                f.unlink()
        if not any(labels.iterdir()):
            labels.rmdir()


class VideoDir:
    """``labels/NNNNNN.png``, ``overlay.mp4``, ``run.json``, ``summary.json``, ``.chunks/``."""

    def __init__(self, path: Path, *, resume: bool = False, overwrite: bool = False) -> None:
        self.path = path
        self.labels = path / "labels"
        self.chunks = path / CHUNK_DIR
        if holds_output(path) and not (resume or overwrite):
            raise BmvsegError(
                f"{path} already holds output; pass --resume to continue that run "
                "or --overwrite to replace it"
            )
        try:
            if overwrite and not resume and path.is_dir():
                remove_own(path)
            self.labels.mkdir(parents=True, exist_ok=True)
            self.chunks.mkdir(exist_ok=True)
            for folder in (path, self.labels, self.chunks):
                for stray in folder.glob(f"{TMP_PREFIX}*"):
                    stray.unlink()
            (path / "summary.json").unlink(missing_ok=True)  # no longer true once we run
        except OSError as exc:
            raise BmvsegError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def label_path(self, index: int) -> Path:
        return self.labels / f"{index:06d}.png"

    def tmp_path(self, final: Path) -> Path:
        return final.with_name(TMP_PREFIX + final.name)
