"""One playable overlay from the chunks' pieces, joined without re-encoding.

Every piece is an MP4 whose H.264 stream starts with an IDR frame and was encoded with the same
settings and frame size, so the pieces' packets follow each other in one stream: they are
remuxed in order, each piece's timestamps shifted to where it starts in the video (its first
frame's time, so variable frame rates keep their timing), and never before the end of the piece
before it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import av

from bmvseg.errors import BmvsegError
from bmvseg.output.safe import is_regular


def join_pieces(
    pieces: list[Path], dest: Path | BinaryIO, starts: list[float] | None = None
) -> int:
    """Remux ``pieces`` (in frame order) into the MP4 ``dest``; returns the packets written.

    ``starts``: each piece's start in seconds from the first (None: one after another).  A
    piece that is not a regular file (a link or FIFO planted in its place) is refused unread.
    """
    for piece in pieces:
        if not is_regular(piece):
            raise BmvsegError(f"{piece} is not a regular file bmvseg wrote; refusing to read it")
    written = 0
    with av.open(dest if not isinstance(dest, Path) else str(dest), mode="w", format="mp4") as out:
        ostream = None
        offset = 0  # in the pieces' (shared) time base
        for i, piece in enumerate(pieces):
            with av.open(str(piece)) as inp:
                stream = inp.streams.video[0]
                if ostream is None:
                    ostream = out.add_stream_from_template(stream)
                if starts is not None and stream.time_base:
                    offset = max(offset, round(starts[i] / float(stream.time_base)))
                end = offset
                for packet in inp.demux(stream):
                    if packet.size == 0:  # the demuxer's end-of-stream marker
                        continue
                    pts = packet.pts if packet.pts is not None else packet.dts
                    end = max(end, offset + pts + (packet.duration or 0))
                    packet.pts = None if packet.pts is None else packet.pts + offset
                    packet.dts = None if packet.dts is None else packet.dts + offset
                    packet.stream = ostream
                    out.mux(packet)
                    written += 1
                offset = end
    return written
