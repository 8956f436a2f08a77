"""Output directories: bmvseg removes only what it can prove it wrote.

**The run record.**  Before a command writes anything into its output directory it writes
``.bmvseg-run.json`` there (atomically), naming the format and its version, the command kind
(``segment``, ``benchmark``), the run's identity (what ``--resume`` must find unchanged), every
file the run writes or will write, relative to the directory (``labels/NNNNNN.png``, where
``NNNNNN`` stands for six or more digits), and the subdirectories it created.  A record is
valid only if it has exactly these fields with these types and every file and directory it
names belongs to its kind's :data:`LAYOUTS`, so a record that names the user's ``notes.txt``,
``../x`` or an absolute path is not proof of anything: it is refused, never obeyed.

**The rule** (:func:`claim_output_dir`, the same for every command that writes a directory):

- a new directory, or an empty existing one, is taken;
- a non-empty directory without a valid record is refused whatever the flags: it is not ours;
- the current directory, a directory above it, or one that contains an input is refused;
- a record of another kind is refused (a benchmark never replaces a segment run's files);
- ``overwrite`` removes the files the record names (and their ``.partial-`` temporaries), then
  the directories it created if they are empty; anything else stays;
- ``resume`` touches nothing until the record's identity equals this run's; it then removes
  only its own ``.partial-`` files and ``summary.json`` (no longer true once the run goes on).

**Never half-true, never through a link.**  Every file is written under ``.partial-NAME``,
created new (whatever was planted there is unlinked, never followed or opened:
:mod:`bmvseg.output.safe`), and renamed into place, so a file that exists is complete and
nothing outside the directory is ever written; ``summary.json`` is written last and says
whether the run completed.  A run killed at any point leaves label files for a prefix of the
frames, from which ``--resume`` restarts at the last keyframe boundary.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from bmvseg.errors import BmvsegError
from bmvseg.output.layouts import INDEX, LAYOUTS, OUTPUT_OF
from bmvseg.output.safe import create_new, is_regular, read_regular

RECORD = ".bmvseg-run.json"
FORMAT = "bmvseg-run"
VERSION = 1
TMP_PREFIX = ".partial-"


def _entry_regex(entry: str) -> re.Pattern[str]:
    return re.compile(re.escape(entry).replace(INDEX, r"[0-9]{6,}"))


def _error(path: Path, exc: OSError) -> BmvsegError:
    return BmvsegError(f"cannot write {path}: {exc.strerror or exc}")


# -- the record ------------------------------------------------------------------------------


def _jsonable(identity: dict[str, Any]) -> dict[str, Any]:
    """The identity as it reads back from the record (tuples become lists, paths strings)."""
    return json.loads(json.dumps(identity, default=str))


def read_record(path: Path) -> dict[str, Any] | None:
    """The valid run record in ``path``, or None if there is none or it is not valid."""
    try:
        st = os.lstat(path / RECORD)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 1 << 20:
            return None
        rec = json.loads((path / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if _valid(rec) else None


FIELDS = {"format", "version", "kind", "identity", "files", "dirs"}


def _valid(rec: Any) -> bool:
    if not isinstance(rec, dict) or set(rec) != FIELDS:
        return False
    if rec["format"] != FORMAT or type(rec["version"]) is not int or rec["version"] != VERSION:
        return False
    layout = LAYOUTS.get(rec["kind"]) if isinstance(rec["kind"], str) else None
    if layout is None or not isinstance(rec["identity"], dict):
        return False
    files, dirs = rec["files"], rec["dirs"]
    if not isinstance(files, list) or not isinstance(dirs, list):
        return False
    if not all(isinstance(f, str) and f in layout.files for f in files):
        return False
    return all(isinstance(d, str) and d in layout.dirs for d in dirs)


# -- the directory ---------------------------------------------------------------------------


class RunDir:
    """A directory claimed by :func:`claim_output_dir`; writes only what its record names."""

    def __init__(self, path: Path, kind: str, files: Iterable[str]):
        self.path = path
        self.kind = kind
        self.files = tuple(files)
        self.labels = path / "labels"
        self._names = [_entry_regex(f) for f in self.files]

    def owns(self, rel: str) -> bool:
        """Whether ``rel`` (relative, '/'-separated) is a file this run's record names."""
        folder, name = os.path.split(rel)
        if name.startswith(TMP_PREFIX):
            name = name[len(TMP_PREFIX) :]
        rel = f"{folder}/{name}" if folder else name
        return rel == RECORD or any(r.fullmatch(rel) for r in self._names)

    def _rel(self, final: Path) -> str:
        rel = final.relative_to(self.path).as_posix()
        if not self.owns(rel):  # a bug, not a user error: every file written must be named
            raise ValueError(f"{rel} is not named in the {self.kind} run record")
        return rel

    # -- atomic writes -------------------------------------------------------------------------
    def tmp_path(self, final: Path) -> Path:
        self._rel(final)
        return final.with_name(TMP_PREFIX + final.name)

    def create_tmp(self, final: Path) -> tuple[Path, BinaryIO]:
        """``final``'s temporary name, created new and open for writing (:mod:`.safe`)."""
        tmp = self.tmp_path(final)
        return tmp, create_new(tmp)

    def commit(self, tmp: Path, final: Path) -> None:
        """Rename ``tmp`` onto ``final`` (a link or FIFO at ``final`` is replaced, not followed)."""
        try:
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _error(final, exc) from exc

    def write_bytes(self, final: Path, data: bytes) -> None:
        tmp, fh = self.create_tmp(final)
        try:
            with fh:
                fh.write(data)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _error(final, exc) from exc
        self.commit(tmp, final)

    def write_json(self, name: str, obj: dict[str, Any]) -> None:
        self.write_bytes(self.path / name, json.dumps(obj, indent=2, default=str).encode())

    def read_json(self, rel: str) -> dict | None:
        """A JSON object this run wrote at ``rel``, or None (missing, not a regular file, ...)."""
        data = read_regular(self.path / rel, limit=64 << 20)
        try:
            obj = json.loads(data) if data is not None else None
        except ValueError:
            return None
        return obj if isinstance(obj, dict) else None

    # -- labels (segment) ----------------------------------------------------------------------
    def label_path(self, index: int) -> Path:
        return self.labels / f"{index:06d}.png"

    def read_labels(self, index: int) -> np.ndarray:
        """A label file this run wrote (resume), or a one-line error when it is not one."""
        data = read_regular(self.label_path(index))
        labels = None
        if data:
            labels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if labels is None or labels.ndim != 2:
            raise BmvsegError(f"{self.label_path(index)} is not a label file bmvseg wrote; "
                              "pass --overwrite to start again")  # fmt: skip
        return labels

    def done_prefix(self, start: int = 0) -> int:
        """The first frame from ``start`` on whose labels are not written yet (from 0: how
        many frames already have their labels)."""
        n = start
        while is_regular(self.label_path(n), own=True):
            n += 1
        return n


def _is_within(inner: str, outer: str) -> bool:
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def _refuse_places(path: Path, inputs: Iterable[str | os.PathLike]) -> None:
    real = os.path.realpath(path)
    if _is_within(os.path.realpath(os.getcwd()), real):
        raise BmvsegError(
            f"{path} is the current directory or one above it; give a directory of its own"
        )
    for inp in inputs:
        if _is_within(os.path.realpath(inp), real):
            raise BmvsegError(f"{path} contains the input {inp}; give another output directory")


def _owned_dir(path: Path, rel: str) -> bool:
    """Whether ``path/rel`` is a real directory (a symlink could lead out of ``path``)."""
    try:
        st = os.lstat(path / rel)
    except FileNotFoundError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        raise BmvsegError(f"{path / rel} is not a directory bmvseg made; refusing to touch {path}")
    return True


def _remove(path: Path, rec: dict[str, Any], keep: Iterable[str], select) -> None:
    """Remove the regular files in the record's directories that ``select`` accepts."""
    run = RunDir(path, rec["kind"], rec["files"])
    folders = [
        d for d in ["", *rec["dirs"], *LAYOUTS[rec["kind"]].dirs] if d == "" or _owned_dir(path, d)
    ]
    doomed: list[Path] = []
    for folder in dict.fromkeys(folders):
        with os.scandir(path / folder) as it:
            for entry in it:
                rel = f"{folder}/{entry.name}" if folder else entry.name
                if rel in keep or not entry.is_file(follow_symlinks=False):
                    continue
                if run.owns(rel) and select(rel, entry.name):
                    doomed.append(path / rel)
    try:
        for p in doomed:
            p.unlink(missing_ok=True)
        for d in rec["dirs"]:
            if (path / d).is_dir() and not any((path / d).iterdir()):
                (path / d).rmdir()
    except OSError as exc:
        raise _error(path, exc) from exc


def check_claim(
    path: str | os.PathLike,
    kind: str,
    identity: dict[str, Any],
    inputs: Iterable[str | os.PathLike] = (),
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any] | None:
    """Every refusal of :func:`claim_output_dir`, touching nothing; the valid record or None.

    A job checks all its folders this way before it claims any of them.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise BmvsegError(f"{path} exists and is not a directory")
    _refuse_places(path, list(inputs))
    ident = _jsonable(identity)
    try:
        entries = sorted(os.listdir(path)) if path.is_dir() else []
    except OSError as exc:
        raise BmvsegError(f"cannot read {path}: {exc.strerror or exc}") from None
    rec = read_record(path) if entries else None
    if entries:
        if rec is None:
            why = "an invalid bmvseg run record" if RECORD in entries else "no bmvseg run record"
            raise BmvsegError(
                f"{path} is not empty and holds {why}; refusing to write into it "
                "(give a new or empty directory)"
            )
        if rec["kind"] != kind:
            raise BmvsegError(
                f"{path} holds the output of {OUTPUT_OF[rec['kind']]}; give another directory"
            )
        if not (resume or overwrite):
            raise BmvsegError(
                f"{path} already holds output; pass --resume to continue that run "
                "or --overwrite to replace it"
            )
        if resume and rec["identity"] != ident:
            old = rec["identity"]
            changed = sorted(k for k in {*ident, *old} if old.get(k) != ident.get(k))
            raise BmvsegError(
                f"{path} holds a different run ({', '.join(changed)} differ); "
                "use --overwrite or another directory"
            )
        for d in [*rec["dirs"], *LAYOUTS[kind].dirs]:
            _owned_dir(path, d)
    return rec


def claim_output_dir(
    path: str | os.PathLike,
    kind: str,
    identity: dict[str, Any],
    inputs: Iterable[str | os.PathLike] = (),
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> RunDir:
    """Take ``path`` as the output directory of a ``kind`` run, by the rule of this module.

    Everything that can refuse happens before anything is removed (:func:`check_claim`); the
    new record is written before any other file.  ``identity`` must be JSON-serialisable;
    ``inputs`` are the files the run reads (never inside ``path``).  With ``resume`` (which
    wins over ``overwrite``) the returned directory keeps its label files; otherwise the run
    starts empty.
    """
    layout = LAYOUTS[kind]
    path = Path(path)
    rec = check_claim(path, kind, identity, inputs, resume=resume, overwrite=overwrite)
    ident = _jsonable(identity)
    made = [d for d in layout.dirs if not (path / d).exists()]
    if rec is not None and resume:
        made = sorted({*made, *rec["dirs"]})  # still ours to remove later
        _remove(
            path,
            rec,
            keep={RECORD},
            select=lambda rel, name: name.startswith(TMP_PREFIX) or rel == "summary.json",
        )
    elif rec is not None:  # overwrite
        _remove(path, rec, keep={RECORD}, select=lambda rel, name: True)
        made = [d for d in layout.dirs if not (path / d).exists()]
    record = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "identity": ident,
        "files": list(layout.files),
        "dirs": made,
    }
    run = RunDir(path, kind, layout.files)
    try:
        path.mkdir(parents=True, exist_ok=True)
        run.write_bytes(path / RECORD, json.dumps(record, indent=2).encode())
        for d in layout.dirs:
            (path / d).mkdir(exist_ok=True)
    except OSError as exc:
        raise _error(path, exc) from exc
    return run
