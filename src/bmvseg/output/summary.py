"""The one summary format: ``summary.json`` of a video, whether one process or a job wrote it.

A summary merges the facts of the parts a video was segmented in (one part for a single run,
one per chunk for a job; :meth:`bmvseg.output.frames.FrameLog.facts`) with the run's identity
and where it ran.  A job's record (``job.json``) lists every video's summary
(:func:`brief`), so what a video's summary says (ended early, damaged) is what its job says.

Keys: the identity (what ``--resume`` must find unchanged) and ``video``, ``video_bytes``;
``complete`` (always true: the summary is written last), ``state`` (:func:`state`),
``stream_ended_early``, ``frames``, ``wall_time_s``, ``fps`` (frames segmented per second),
``input_fps`` (the video's frame rate), ``stage_ms_per_frame``, ``keyframes`` (index, the
reason that placed it and every reason it has: a keyframe on a cut lists ``cut``), ``cuts``
(every frame the cut test marked, keyframe or not; no interval fuses across one),
``damaged_frames``, ``concealed_frames``, ``stream_index``, ``notices``, ``motion_source``,
``motion_reason``, ``width``, ``height``, ``rotation``, ``classes`` (what the label ids mean:
:meth:`bmvseg.data.classes.ClassSet.record`, also written as ``classes.json``),
``model_split`` (the cut the model ran with; the identity's ``split`` is the option as given,
null for the model's default), ``command``, ``device``, ``machine``, ``python``, ``torch``; a
single run adds ``resumed_from`` and its frame range (``start``, ``end``, also part of the
identity), a job ``job`` and ``chunking``; a live run adds the keys of :mod:`bmvseg.output.live`.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

import torch

# A finished video's state: what its labels can be trusted for.
COMPLETE = "complete"  # every frame of a clean stream
ENDED_EARLY = "ended early"  # the stream is truncated or corrupt: frames up to where it ended
DAMAGED = "damaged"  # the decoder concealed damage: the listed frames' labels are not clean
FINISHED = (COMPLETE, ENDED_EARLY, DAMAGED)


def state(summary: dict) -> str:
    """What a finished video's summary says about it (one of :data:`FINISHED`)."""
    if summary.get("stream_ended_early"):
        return ENDED_EARLY
    if summary.get("damaged_frames"):
        return DAMAGED
    return COMPLETE


def _weighted(parts: list[dict], key: str) -> dict[str, float]:
    """Per-frame stage times of the whole video from its parts' (weighted by their frames)."""
    total = sum(p["frames"] for p in parts) or 1
    out: dict[str, float] = {}
    for p in parts:
        for k, v in p.get(key, {}).items():
            out[k] = out.get(k, 0.0) + v * p["frames"] / total
    return {k: round(v, 3) for k, v in out.items()}


def summarize(
    parts: list[dict[str, Any]],
    *,
    about: dict,
    identity: dict,
    wall_s: float,
    rotation: int,
    device: str,
    command: str,
    **extra: Any,
) -> dict:
    """The summary of a video segmented in ``parts`` (in frame order)."""
    frames = sum(p["frames"] for p in parts)
    first = next((p for p in parts if p["frames"]), parts[0])
    summary = {
        **about,
        **identity,
        "complete": True,
        "stream_ended_early": any(p["stream_ended_early"] for p in parts),
        "frames": frames,
        "wall_time_s": round(wall_s, 3),
        "fps": round(frames / wall_s, 3) if wall_s > 0 else None,
        "input_fps": first["input_fps"],
        "stage_ms_per_frame": _weighted(parts, "stage_ms_per_frame"),
        "keyframes": [k for p in parts for k in p["keyframes"]],
        "cuts": [i for p in parts for i in p.get("cuts", [])],
        "damaged_frames": [i for p in parts for i in p["damaged_frames"]],
        "concealed_frames": [i for p in parts for i in p["concealed_frames"]],
        "stream_index": first["stream_index"],
        "notices": first["notices"],
        "motion_source": first["motion_source"],
        "motion_reason": first["motion_reason"],
        "width": first["width"],
        "height": first["height"],
        "rotation": rotation,
        "classes": first.get("classes"),
        "model_split": first.get("model_split"),
        "command": command,
        "device": device,
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        **extra,
    }
    summary["state"] = state(summary)
    return summary


BRIEF = ("state", "frames", "fps", "input_fps", "stream_ended_early", "damaged_frames",
         "concealed_frames", "motion_source", "width", "height")  # fmt: skip


def brief(summary: dict) -> dict:
    """What a job's record repeats of a video's summary (not its per-chunk details)."""
    return {k: summary.get(k) for k in BRIEF}
