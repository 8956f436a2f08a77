"""Cutting a video into chunks that segment independently and join into the whole run.

A chunk is an engine range ``[start, end)`` whose start is a *placement-stable* frame of the
run's keyframe schedule (``KeyframeSchedule.stable``: fixed placement's keyframes, adaptive
placement's anchors; see :mod:`bmvseg.schemes.keyframes`), so by the engine's range contract
its labels are exactly those of a whole-video run.  inter-BMV reads on to the keyframe after
``end - 1`` (at most one interval of extra decoding per chunk).

Starts are the stable frames nearest to every ``chunk_frames`` frames.  The last chunk is
open-ended (``end=None``): a container's frame count can be an estimate, and the frames past it
must still be segmented; when the estimate is too high, the chunks past the real end come back
empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bmvseg.errors import BmvsegError

DEFAULT_CHUNK_FRAMES = 300


@dataclass(frozen=True)
class Chunk:
    """Frames ``start <= index < end`` of one video (``end=None``: to the end of the stream)."""

    start: int
    end: int | None

    @property
    def key(self) -> str:
        """A file-name-safe name, stable across runs (what ``--resume`` finds chunks by)."""
        return f"{self.start:06d}-{'end' if self.end is None else f'{self.end:06d}'}"


def _nearest_stable(
    target: int, after: int, before: int, stable: Callable[[int], bool]
) -> int | None:
    """The stable frame in (after, before) nearest to ``target`` (the later one on a tie)."""
    for d in range(max(target - after, before - target)):
        for i in (target + d, target - d):
            if after < i < before and stable(i):
                return i
    return None


def plan_chunks(
    frame_count: int | None,
    chunk_frames: int = DEFAULT_CHUNK_FRAMES,
    stable: Callable[[int], bool] = lambda index: True,
) -> list[Chunk]:
    """Chunks of about ``chunk_frames`` frames covering a video of ``frame_count`` (None: unknown).

    Every start satisfies ``stable``.  A short last piece (under half a chunk) is merged into
    the one before, so no chunk pays the per-chunk overhead for a handful of frames.
    """
    if not isinstance(chunk_frames, int) or chunk_frames < 1:
        raise BmvsegError(f"chunk length must be >= 1 frame, got {chunk_frames!r}")
    if not frame_count or frame_count <= chunk_frames:
        return [Chunk(0, None)]
    starts = [0]
    while starts[-1] + chunk_frames < frame_count:
        nxt = _nearest_stable(starts[-1] + chunk_frames, starts[-1], frame_count, stable)
        if nxt is None:
            break
        starts.append(nxt)
    if len(starts) > 1 and frame_count - starts[-1] < chunk_frames / 2:
        starts.pop()
    return [Chunk(s, e) for s, e in zip(starts, [*starts[1:], None], strict=True)]
