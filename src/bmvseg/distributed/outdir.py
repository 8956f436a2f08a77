"""What the driver reads back from a video's folder (the folder itself is claimed and written by
:mod:`bmvseg.output.rundir`, layout ``chunked``): finished chunks' markers under ``.chunks/``."""

from __future__ import annotations

import json
from pathlib import Path

CHUNK_DIR = ".chunks"  # finished chunks' markers and overlay pieces, removed when complete


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``, or None when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
