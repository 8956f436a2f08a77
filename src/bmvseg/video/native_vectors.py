"""The ``native`` motion source: the stream's own vectors (``+export_mvs``), past-referencing only.

Exact when every P-frame can reference nothing but the previous frame (which
:func:`~bmvseg.video.motion_source.choose_motion_source` checks under ``auto``); otherwise an
approximation.  Intra-coded blocks inside P-frames have no vector: their cells are invalid.
"""

from __future__ import annotations

import av

from bmvseg.video.estimate import motion_vectors
from bmvseg.video.motion import MotionField, rasterise
from bmvseg.video.reencoder import estimate_pair


class NativeVectors:
    """Fields rasterised from the decoder's exported vectors.

    Frames without vectors (I-frames, P-frames coded all-intra, the last frame of an MPEG-2
    stream, which FFmpeg's decoder returns at the flush without its vectors) get no field,
    or, with ``estimate_gaps`` (under ``auto``), their frame pair estimated alone by the
    re-encoder.
    """

    kind = "native"
    decoder_options = {"flags2": "+export_mvs"}

    def __init__(
        self, height: int, width: int, block: int, reason: str, *, estimate_gaps: bool
    ) -> None:
        self.height, self.width, self.block = height, width, block
        self.reason = reason
        self.notice: str | None = None
        self.estimate_gaps = estimate_gaps

    def first_needed(self, start: int) -> int:
        """The frame before ``start``: the pair of a mid-stream I-frame needs it."""
        return max(start - 1, 0)

    def begin(self, need: int) -> None:
        pass

    def field(
        self, vf: av.VideoFrame, prev: av.VideoFrame | None, pict: str, index: int, wanted: bool
    ) -> MotionField | None:
        if not wanted or index == 0:
            return None
        vectors = motion_vectors(vf)
        if vectors is not None and len(vectors):
            return rasterise(vectors, self.height, self.width, self.block)
        if not self.estimate_gaps or prev is None:
            return None
        return estimate_pair(prev, vf, self.height, self.width, self.block)

    def end(self) -> None:
        pass
