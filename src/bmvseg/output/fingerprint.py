"""What makes two input files the same input: a fingerprint of their content.

``--resume`` must continue only the run it interrupted.  A path and a byte size do not say that
(a re-encode, a different clip of the same size, a file replaced under the same name), and
hashing a whole video costs a full read of files that may be many GiB.  The fingerprint hashes:

- the file size (8 bytes, little-endian);
- the first 64 KiB and the last 64 KiB: the container's header and index live there (MP4's
  ``moov`` at either end, Matroska's EBML header and cues, H.264's SPS/PPS and first slices),
  and they name every sample's size and offset, so a different encode differs there;
- ``SAMPLES`` stretches of 64 KiB at fixed fractions ``i / (SAMPLES + 1)`` of the file: media
  data between header and index, so two files sharing a header (a clip cut or spliced at the
  same size, a file patched in the middle) still differ unless they agree at every stretch.

A file no larger than all the stretches together is hashed whole.  This guards against
accidents, not against someone crafting a file to collide: a change confined to bytes between
the stretches of a large file is not seen, and nothing else but resume relies on it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from bmvseg.errors import BmvsegError

STRETCH = 64 * 1024  # bytes read at each place
SAMPLES = 16  # stretches between the first and the last
VERSION = "fp1"  # changes whenever what is hashed changes: old records then differ, not collide


def _offsets(size: int) -> list[int]:
    if size <= (SAMPLES + 2) * STRETCH:
        return []
    inner = [size * i // (SAMPLES + 1) - STRETCH // 2 for i in range(1, SAMPLES + 1)]
    return [0, *inner, size - STRETCH]


def input_fingerprint(path: str | os.PathLike) -> str:
    """``"fp1:" + blake2b-128 hex`` of the size and the sampled content of the file ``path``.

    Only regular files are fingerprinted: reading a FIFO or a device would consume or hang on
    what the run itself has to read.
    """
    p = Path(path)
    try:
        if not stat.S_ISREG(os.stat(p).st_mode):  # before open: a FIFO would block there
            raise BmvsegError(f"{p}: not a regular file; cannot identify it for the run record")
        with open(p, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BmvsegError(f"{p}: not a regular file; cannot identify it for the run record")
            h = hashlib.blake2b(digest_size=16, person=b"bmvseg-input")
            h.update(st.st_size.to_bytes(8, "little"))
            offsets = _offsets(st.st_size)
            if not offsets:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            for off in offsets:
                fh.seek(off)
                h.update(fh.read(STRETCH))
    except OSError as exc:
        raise BmvsegError(f"cannot read {p}: {exc.strerror or exc}") from None
    return f"{VERSION}:{h.hexdigest()}"
