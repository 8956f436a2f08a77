"""An output directory that is never half-true.

Every file is written under a temporary name and renamed into place, so a file that exists is
complete.  ``run.json`` records what the run is (video, model, scheme, ...) when it starts, so
``--resume`` can refuse to continue a different run; ``summary.json`` is written last and says
whether the run completed.  A run killed at any point leaves label files for a prefix of the
frames (plus possibly stray temporary files), from which ``--resume`` restarts at the last
keyframe boundary.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bmvseg.errors import BmvsegError

TMP_PREFIX = ".partial-"


def _write_error(path: Path, exc: OSError) -> BmvsegError:
    return BmvsegError(f"cannot write {path}: {exc.strerror or exc}")


class RunDir:
    """The ``OUTDIR`` of ``bmvseg segment``: labels/, overlay.mp4, run.json, summary.json."""

    def __init__(self, path: str | os.PathLike, *, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.labels = self.path / "labels"
        exists = self.path.exists() and any(self.path.iterdir()) if self.path.is_dir() else False
        if self.path.exists() and not self.path.is_dir():
            raise BmvsegError(f"{self.path} exists and is not a directory")
        if exists and not (resume or overwrite):
            raise BmvsegError(
                f"{self.path} already holds output; pass --resume to continue that run "
                "or --overwrite to replace it"
            )
        try:
            if exists and overwrite and not resume:
                shutil.rmtree(self.path)
            self.labels.mkdir(parents=True, exist_ok=True)
            for stray in self.path.rglob(f"{TMP_PREFIX}*"):
                stray.unlink()
            (self.path / "summary.json").unlink(missing_ok=True)  # no longer true once we run
        except OSError as exc:
            raise _write_error(self.path, exc) from exc

    # -- atomic writes -------------------------------------------------------------------------
    def tmp_path(self, final: Path) -> Path:
        return final.with_name(TMP_PREFIX + final.name)

    def commit(self, tmp: Path, final: Path) -> None:
        try:
            os.replace(tmp, final)
        except OSError as exc:
            raise _write_error(final, exc) from exc

    def write_bytes(self, final: Path, data: bytes) -> None:
        tmp = self.tmp_path(final)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _write_error(final, exc) from exc
        self.commit(tmp, final)

    def write_json(self, name: str, obj: dict[str, Any]) -> None:
        self.write_bytes(self.path / name, json.dumps(obj, indent=2, default=str).encode())

    # -- labels --------------------------------------------------------------------------------
    def label_path(self, index: int) -> Path:
        return self.labels / f"{index:06d}.png"

    def write_labels(self, index: int, labels: np.ndarray) -> None:
        ok, png = cv2.imencode(".png", labels)
        if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
            raise RuntimeError("PNG encoding failed")
        self.write_bytes(self.label_path(index), png.tobytes())

    def read_labels(self, index: int) -> np.ndarray:
        return cv2.imread(str(self.label_path(index)), cv2.IMREAD_UNCHANGED)

    def done_prefix(self) -> int:
        """How many frames, from frame 0 on, already have their labels written."""
        n = 0
        while self.label_path(n).is_file():
            n += 1
        return n
