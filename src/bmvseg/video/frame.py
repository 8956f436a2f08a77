"""One decoded frame and its motion: what every reader yields and every scheme consumes.

Frame indexing (written here once): ``index`` counts decoded frames in presentation order from
0, whatever the container's timestamps say; ``motion`` of frame ``index`` is relative to frame
``index - 1`` (see :mod:`bmvseg.video.motion` for the field's sign and coordinate order), and
frame 0's field is all-invalid.
"""

from __future__ import annotations

import av
import numpy as np

from bmvseg.video.motion import MotionField

FULL_RANGE = 2  # FFmpeg's AVCOL_RANGE_JPEG


class Frame:
    """One decoded frame in presentation order and its motion relative to the previous one.

    ``image`` is converted from the decoded picture to RGB when first read and then cached:
    frames whose image nobody reads (intermediate frames need only motion) cost no conversion.
    The picture itself is kept while the frame lives, so the overlay writer can draw on its own
    planes (:meth:`i420`) without converting it at all.
    """

    __slots__ = ("index", "time", "pict_type", "motion", "damaged", "_image", "_picture")

    def __init__(
        self,
        index: int,
        time: float,
        pict_type: str,
        image: np.ndarray | None = None,
        motion: MotionField | None = None,
        damaged: bool = False,
        *,
        picture: av.VideoFrame | None = None,
    ) -> None:
        self.index = index  # 0-based presentation order among decoded frames
        self.time = time  # seconds: pts * time_base, or index / fps without pts
        self.pict_type = pict_type  # "I", "P", "B" or "?" of the input stream's frame
        self.motion = motion  # relative to frame index-1; frame 0: MotionField.invalid(...)
        self.damaged = damaged  # concealed by the decoder, or predicted from a concealed frame
        self._image = image
        self._picture = picture  # the decoded frame (kept: see i420)

    @property
    def image(self) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB; None when the frames were read with ``images=False``."""
        if self._image is None and self._picture is not None:
            self._image = self._picture.to_ndarray(format="rgb24")
        return self._image

    def i420(self) -> np.ndarray | None:
        """The decoded picture as an ``(H * 3 / 2, W)`` uint8 I420 array (Y, U, V planes), with
        no colour conversion; None unless it is 8-bit limited-range 4:2:0 with even sides."""
        pic = self._picture
        if pic is None or pic.format.name != "yuv420p" or (pic.width | pic.height) % 2:
            return None
        if pic.color_range == FULL_RANGE:  # a JPEG-range picture: the palette would not match
            return None
        return pic.to_ndarray()

    @image.setter
    def image(self, value: np.ndarray | None) -> None:
        self._image, self._picture = value, None

    def __repr__(self) -> str:
        return (
            f"Frame(index={self.index}, time={self.time:.3f}, pict_type={self.pict_type!r}, "
            f"damaged={self.damaged})"
        )
