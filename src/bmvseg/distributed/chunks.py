"""Cutting a video into chunks that segment independently and join into the whole run.

A chunk is an engine range ``[start, end)`` whose start is a keyframe (a multiple of the
interval ``k``), so by the engine's range contract (``bmvseg.schemes.engine``) its labels are
exactly those of a whole-video run; inter-BMV reads on to the keyframe after ``end - 1``, which
costs at most ``k - 1`` extra decoded frames per chunk.  Chunk lengths are multiples of ``k``.

The last chunk is open-ended (``end=None``): a container's frame count can be an estimate, and
the frames past it must still be segmented.  When the estimate is too high, the chunks past the
real end come back empty.
"""

from __future__ import annotations

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


def chunk_length(chunk_frames: int, interval: int) -> int:
    """``chunk_frames`` rounded to the nearest multiple of ``interval`` (at least one interval)."""
    if chunk_frames < 1:
        raise BmvsegError(f"chunk length must be >= 1 frame, got {chunk_frames}")
    if interval < 1:
        raise BmvsegError(f"keyframe interval must be >= 1, got {interval}")
    return max(1, round(chunk_frames / interval)) * interval


def plan_chunks(frame_count: int | None, interval: int, chunk_frames: int) -> list[Chunk]:
    """Keyframe-aligned chunks covering a video of ``frame_count`` frames (None: unknown).

    A short last piece (under half a chunk) is merged into the one before, so no chunk pays the
    per-chunk overhead for a handful of frames.
    """
    size = chunk_length(chunk_frames, interval)
    if not frame_count or frame_count <= size:
        return [Chunk(0, None)]
    starts = list(range(0, frame_count, size))
    if len(starts) > 1 and frame_count - starts[-1] < size / 2:
        starts.pop()
    return [Chunk(s, e) for s, e in zip(starts, [*starts[1:], None], strict=True)]
