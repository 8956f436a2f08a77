"""What a reader's ``source`` argument may be, checked before anything is opened.

Video files are regular files or seekable binary file objects: FIFOs, devices and sockets are
refused at open (a FIFO without a writer would block forever, and probing needs seeking); they
are read as live streams only when asked (see :mod:`bmvseg.video.live_source`).
"""

from __future__ import annotations

import io
import os
import stat

from bmvseg.errors import VideoError

_FILE_KINDS = {
    stat.S_IFIFO: "FIFO (named pipe)",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


def describe(source: object) -> str:
    """The name messages give the input: its path or URL, ``<stdin>`` for ``-``, a file
    object's name, or ``<stream>``."""
    if source == "-":
        return "<stdin>"
    if isinstance(source, (str, os.PathLike)):
        return os.fsdecode(os.fspath(source))
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<stream>"


def reason(exc: BaseException | str) -> str:
    """An exception (or a message) as one line for a user-facing error."""
    if isinstance(exc, str):
        return exc
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def check_source(source: object, name: str) -> int | None:
    """Refuse what cannot be read as a video file; the start position of a file object.

    Only ``str``/``os.PathLike`` paths of regular files and readable, seekable binary file
    objects are accepted.  Paths are ``stat``-ed, never opened, before the check: opening a FIFO
    without a writer blocks forever.
    """
    check_kind(source)
    if isinstance(source, (str, os.PathLike)):
        try:
            path = os.fspath(source)
            info = os.stat(path)
        except FileNotFoundError:
            raise VideoError(f"{name}: no such file") from None
        except (OSError, TypeError, ValueError) as exc:
            raise VideoError(f"{name}: cannot read ({reason(exc)})") from None
        if stat.S_ISDIR(info.st_mode):
            raise VideoError(f"{name}: is a directory, not a video")
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise VideoError(
                f"{name}: is a {kind}, not a regular file (bmvseg reads seekable video files; "
                "save the stream to a file first)"
            )
        return None
    try:
        seekable = bool(source.seekable()) if hasattr(source, "seekable") else False
        position = source.tell() if seekable else None  # type: ignore[attr-defined]
    except (OSError, ValueError) as exc:
        raise VideoError(f"{name}: file object cannot be used ({reason(exc)})") from None
    if position is None:
        raise VideoError(
            f"{name}: file object is not seekable (a pipe or socket?); bmvseg needs to seek "
            "in a video file: save it to a file, read it into io.BytesIO, or read it as a live "
            "stream (live=True)"
        )
    return int(position)


def check_kind(source: object) -> None:
    """Refuse a source that is neither a path nor a binary file object (bytes, text files...)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raise VideoError(
            f"video must be a path (str or os.PathLike) or a binary file object, got "
            f"{type(source).__name__} (a bytes path? pass os.fsdecode(path); video data? "
            "wrap it in io.BytesIO)"
        )
    if isinstance(source, (str, os.PathLike)):
        return
    if not callable(getattr(source, "read", None)):
        raise VideoError(
            f"video must be a path (str or os.PathLike) or a binary file object, got "
            f"{type(source).__name__}"
        )
    if isinstance(source, io.TextIOBase):
        raise VideoError(f"{describe(source)}: a text-mode file object; open the video with 'rb'")
