"""The files each kind of bmvseg output may hold, relative to its directory.

A run record (:mod:`bmvseg.output.rundir`) is valid only if every file and directory it names
belongs to its kind's layout, so what bmvseg may ever remove is written down here, once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

INDEX = "NNNNNN"  # in a layout entry: the frame index, six or more digits


@dataclass(frozen=True)
class Layout:
    """The files one command kind may write, relative to its output directory."""

    files: tuple[str, ...]

    @property
    def dirs(self) -> tuple[str, ...]:
        return tuple(sorted({os.path.dirname(f) for f in self.files} - {""}))


LAYOUTS: dict[str, Layout] = {
    # overlay.ts: a live run's overlay (MPEG-TS, playable while it is written).
    "segment": Layout(
        ("run.json", "summary.json", "classes.json", "overlay.mp4", f"labels/{INDEX}.png",
         "overlay.ts")
    ),
    # A video segmented in chunks by a job (bmvseg.distributed): segment's files, and each
    # finished chunk's marker and overlay piece until the video is complete.
    "chunked": Layout(
        (
            "run.json",
            "summary.json",
            "classes.json",
            "overlay.mp4",
            f"labels/{INDEX}.png",
            f".chunks/{INDEX}-{INDEX}.json",
            f".chunks/{INDEX}-{INDEX}.mp4",
            f".chunks/{INDEX}-end.json",
            f".chunks/{INDEX}-end.mp4",
        )
    ),
    # The folder of a job of several videos: its record; each video's folder is claimed alone.
    "job": Layout(("job.json",)),
    "benchmark": Layout(
        (
            "summary.json",
            "classes.json",
            "results.csv",
            "phases.csv",
            "placement.csv",
            "placement.md",
            "table.md",
            "fusion.md",
            "breakdown.md",
            "accuracy_vs_throughput.png",
            "min_accuracy_vs_throughput.png",
            "examples.png",
        )
    ),
    "train": Layout(
        ("last.pt", "best.pt", "history.json", "report.json", "report.md")
    ),
    "demo": Layout(
        (
            "report.md",
            "classes.json",
            "results.csv",
            "accuracy_vs_throughput.png",
            "side_by_side.mp4",
            "side_by_side.png",
            "clip/video.mp4",
            "clip/labels.npz",
            "clip/meta.json",
        )
    ),
}


# What each kind's output is, in the words of whoever ran it (never an internal kind name).
OUTPUT_OF = {
    "segment": "'bmvseg segment' (one video)",
    "chunked": "one video of a 'bmvseg segment' job (resume it as that job)",
    "job": "a 'bmvseg segment' job of several videos",
    "benchmark": "'bmvseg benchmark'",
    "train": "'bmvseg train'",
    "demo": "'bmvseg demo'",
}
