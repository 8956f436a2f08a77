"""Single-file outputs (``bmvseg motion -o X.npz --draw Y.mp4``): checked, then written whole.

An output is only ever a regular file that bmvseg creates or replaces.  Before anything is
read or written, :func:`check_outputs` refuses an output that is one of the inputs (by inode,
so another name or a hard link counts), two outputs that are the same file, and an output that
exists but is not a regular file (a directory, device, FIFO or socket, or a symlink to one:
``os.replace`` would turn a device node into a file).  :class:`Staged` then writes each output
under a temporary name beside it and renames them into place only when everything succeeded,
so a failed run leaves no file, and an existing output stays whole until its replacement is.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from bmvseg.errors import BmvsegError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_output(path: Path) -> None:
    """Refuse ``path`` unless it is absent or a regular file (following symlinks)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise BmvsegError(f"{path}: a symlink to nothing; refusing to replace it") from None
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise BmvsegError(f"{path}: output directory does not exist") from None
        return
    except OSError as exc:
        raise BmvsegError(f"cannot use {path} as an output: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise BmvsegError(f"{path} is {_kind(st.st_mode)}; an output must be a regular file")


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist: then the same only if both name the same place
        return os.path.realpath(a) == os.path.realpath(b)


def check_outputs(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]
) -> None:
    """Refuse outputs that are special files, inputs, or each other (see the module docstring)."""
    outs = [Path(o) for o in outputs]
    ins = [Path(i) for i in inputs]
    for k, out in enumerate(outs):
        check_output(out)
        for inp in ins:
            if os.path.exists(out) and os.path.exists(inp) and os.path.samefile(out, inp):
                raise BmvsegError(f"{out} is the input {inp}; refusing to replace it")
        for other in outs[:k]:
            if _same(out, other):
                raise BmvsegError(f"{other} and {out} are the same file; give two outputs")


class Staged:
    """Temporary files beside their outputs, renamed into place together by :meth:`commit`.

    Use as a context manager: whatever was not committed is removed on exit.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def temp_for(self, dest: str | os.PathLike) -> Path:
        """A new empty file in ``dest``'s directory, with ``dest``'s suffix (muxers read it)."""
        dest = Path(dest)
        check_output(dest)
        try:
            fd, name = tempfile.mkstemp(
                prefix=f".{dest.name}.",
                suffix=dest.suffix,
                dir=os.path.dirname(os.path.abspath(dest)),
            )
        except OSError as exc:
            raise BmvsegError(f"cannot write {dest}: {exc.strerror or exc}") from None
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)  # mkstemp's 0600 would otherwise survive the rename
        self._pending.append((Path(name), dest))
        return Path(name)

    def commit(self) -> None:
        """Rename every temporary file onto its output (each checked again just before)."""
        for _, dest in self._pending:
            check_output(dest)
        while self._pending:
            tmp, dest = self._pending[0]
            try:
                os.replace(tmp, dest)
            except OSError as exc:
                raise BmvsegError(f"cannot write {dest}: {exc.strerror or exc}") from None
            self._pending.pop(0)

    def discard(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def atomic_write(dest: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to the regular file ``dest`` through a temporary file and a rename."""
    with Staged() as staged:
        tmp = staged.temp_for(dest)
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise BmvsegError(f"cannot write {dest}: {exc.strerror or exc}") from None
        staged.commit()
