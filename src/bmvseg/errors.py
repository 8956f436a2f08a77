"""Errors a user can cause.

Every problem that comes from the user's input (a missing file, a stream that is not a video,
a checkpoint for another model, a bad argument) is raised as :class:`BmvsegError`.  The command
line catches exactly this class and prints its message as one line with a non-zero exit, so the
message must name the problem and the offending path or value.  Anything else is a bug and is
allowed to show a traceback.
"""

from __future__ import annotations


class BmvsegError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""

    exit_code = 2


class VideoError(BmvsegError):
    """The input cannot be opened or decoded as a video."""


class CheckpointError(BmvsegError):
    """A model file is unsafe, unreadable, or does not match the model."""
