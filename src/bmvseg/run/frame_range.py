"""Which frames a run writes: ``start``/``end`` as frame numbers or times, and ``max_frames``.

The one convention: a range is ``start <= index < end`` in the engine's frame numbering
(:mod:`bmvseg.schemes.engine`).  A position is a frame number (``90``: a plain integer) or a
time in seconds (``90.5``, ``90s``, ``1:30``, ``1:02:03.5``: a decimal point, a unit or a
colon); a time ``t`` is the first frame shown at or after it, ``ceil(t * fps)`` with the
video's nominal frame rate, so ``--start 0:01`` on a 25 fps video is frame 25 and
``--end 0:02`` stops before frame 50.  Labels of a range equal those frames of a whole run
(:func:`bmvseg.run.to_dir.segment_to_dir` starts the engine at the stable keyframe before
``start`` and writes only the frames asked for).
"""

from __future__ import annotations

import math
import re

from bmvseg.errors import BmvsegError

Position = int | str  # a frame number, or text: a frame number or a time
_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?|\.\d+)(s?)$")
_ROUNDING = 1e-6  # a time printed from a frame's own timestamp maps back to that frame


def frame_of(position: Position | None, fps: float, what: str = "position") -> int | None:
    """``position`` as a frame number (None stays None); times are converted with ``fps``."""
    if position is None:
        return None
    if isinstance(position, bool) or not isinstance(position, int | str):
        raise BmvsegError(f"{what} must be a frame number or a time, got {position!r}")
    if isinstance(position, int):
        if position < 0:
            raise BmvsegError(f"{what} must be >= 0, got {position}")
        return position
    text = position.strip()
    if text.isdigit():
        return int(text)
    m = _TIME.match(text)
    if not m:
        raise BmvsegError(f"bad {what} {position!r}: use a frame number (90) or a time "
                          "(90.5, 90s, 1:30, 1:02:03.5)")  # fmt: skip
    first, second, secs, _ = m.groups()
    if first is not None and second is not None:
        hours, minutes = int(first), int(second)
    else:
        hours, minutes = 0, int(first or 0)
    if (first is not None or second is not None) and float(secs) >= 60:
        raise BmvsegError(f"bad {what} {position!r}: seconds after a colon must be under 60")
    seconds = 3600 * hours + 60 * minutes + float(secs)
    if not fps or fps <= 0:
        raise BmvsegError(f"{what} {position!r} is a time, but the video's frame rate is unknown;"
                          " give a frame number")  # fmt: skip
    return max(0, math.ceil(seconds * fps - _ROUNDING))


def resolve(start: Position | None, end: Position | None, max_frames: int | None, fps: float,
            frame_count: int | None = None) -> tuple[int, int | None]:  # fmt: skip
    """``(start, end)`` frame numbers of the range asked for (``end`` None: to the last frame).

    Refused in one line: an empty range, ``max_frames`` under 1, and a start past the end of a
    video whose frame count is known.
    """
    first = frame_of(start, fps, "start") or 0
    stop = frame_of(end, fps, "end")
    if max_frames is not None:
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
            raise BmvsegError(f"max frames must be >= 1, got {max_frames!r}")
        stop = first + max_frames if stop is None else min(stop, first + max_frames)
    if stop is not None and stop <= first:
        raise BmvsegError(f"empty frame range: end (frame {stop}) is not after start "
                          f"(frame {first})")  # fmt: skip
    if frame_count and first >= frame_count:
        raise BmvsegError(f"start is frame {first}, but the video has {frame_count} frames "
                          f"(0..{frame_count - 1})")  # fmt: skip
    return first, stop
