"""Opening files inside an output folder without trusting what lies at their names.

Anything can have been planted at a name bmvseg writes or reads back (a ``.partial-`` name, a
label file, a chunk marker): a symlink to a file outside the folder, a hard link to one, a FIFO
that blocks whoever opens it.  So:

- a file bmvseg writes is always a *new* file: whatever is at its temporary name is unlinked
  first (a link is removed, never followed; a directory there is refused), then the name is
  created with ``O_CREAT | O_EXCL | O_NOFOLLOW``, which fails rather than follow or reuse
  anything that appeared in between.  The final name is then taken by ``os.replace``, which
  replaces a link or FIFO there without touching what it points to;
- a file bmvseg reads back is opened with ``O_NOFOLLOW | O_NONBLOCK`` and used only if it is a
  regular file (a FIFO does not block, a symlink is not followed).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from bmvseg.errors import BmvsegError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def create_new(path: Path) -> BinaryIO:
    """A new, empty regular file at ``path``, open for writing (see the module docstring)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise BmvsegError(f"cannot write {path}: {exc.strerror or exc}") from None
    else:
        if stat.S_ISDIR(st.st_mode):
            raise BmvsegError(f"{path} is a directory bmvseg did not make; refusing to write there")
        try:
            os.unlink(path)  # a stale temporary file of ours, or something planted: never used
        except OSError as exc:
            raise BmvsegError(f"cannot write {path}: {exc.strerror or exc}") from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _CLOEXEC
    try:
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        raise BmvsegError(
            f"{path} appeared while bmvseg was writing it; refusing to use it"
        ) from None
    except OSError as exc:
        raise BmvsegError(f"cannot write {path}: {exc.strerror or exc}") from None
    return os.fdopen(fd, "w+b")


def is_regular(path: Path, own: bool = False) -> bool:
    """Whether ``path`` itself (not what a link there points to) is a regular file; with
    ``own``, also one with no other name (every file bmvseg writes is new: a hard link to it
    elsewhere was made by someone else)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (not own or st.st_nlink == 1)


def read_regular(path: Path, limit: int | None = None) -> bytes | None:
    """The bytes of the regular file ``path``; None when it is missing, a link, a FIFO, a
    directory or anything else, unreadable, or larger than ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (limit is not None and st.st_size > limit):
            return None
        try:
            return fh.read()
        except OSError:
            return None
