"""The overlay frame composed in the decoded picture's own YUV 4:2:0 planes.

Why: the RGB path (:func:`bmvseg.data.classes.overlay_frame`) converts every decoded picture to
RGB, blends there, and the encoder converts the result back to 4:2:0: two full-frame colour
conversions per frame on the writer's thread, which shares the machine's cores with the model.
Blending is affine and so is the RGB <-> YUV map, so the same blend can be done on the planes
the decoder produced and handed to the encoder as they are: the palette, the white keyframe
border and the legend strip are converted to YUV once (by the same swscale conversion the
encoder would use), the luma plane is blended at full size and the chroma planes at half size
(each chroma sample takes the mean of its 2x2 label colours, as a 4:2:0 conversion of the RGB
blend would).

Only 8-bit limited-range 4:2:0 pictures with even sides take this path (``yuv420p``, what
H.264, MPEG-4 part 2 and most cameras decode to); anything else keeps the RGB path, so both
always give the same frame size (:class:`~bmvseg.video.encode.VideoWriter` pads odd sides).
"""

from __future__ import annotations

from collections import OrderedDict

import av
import cv2
import numpy as np

from bmvseg.data.classes import border_width
from bmvseg.data.legend import CACHE, Legend

ALPHA = 0.5  # label opacity, as the RGB path's :func:`bmvseg.data.classes.blend`
WHITE = (255, 255, 255)
_BLOCK = 8  # px per colour when converting the palette (keeps swscale's chroma filter inside)


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB (even sides) -> ``(H * 3 / 2, W)`` I420, as the encoder would."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p").to_ndarray()


def yuv_colours(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 RGB colours -> ``(N, 3)`` uint8 (Y, U, V) by the encoder's conversion."""
    n = len(rgb)
    tile = np.repeat(np.repeat(np.asarray(rgb, np.uint8)[None], _BLOCK, 0), _BLOCK, 1)
    planes = rgb_to_i420(tile)  # (1.5 * B, N * B)
    b, c = _BLOCK, _BLOCK // 2
    y = planes[c, b // 2 :: b][:n]
    u = planes[b : b + b // 4].reshape(-1)[: n * c][c // 2 :: c]  # row of the U plane
    v = planes[b + b // 4 :].reshape(-1)[: n * c][c // 2 :: c]
    return np.stack([y, u, v], 1)


def planes_of(i420: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of an ``(H * 3 / 2, W)`` I420 array."""
    h = i420.shape[0] * 2 // 3
    w = i420.shape[1]
    chroma = i420[h:].reshape(2, h // 2, w // 2)
    return i420[:h], chroma[0], chroma[1]


class YuvOverlay:
    """Draws a run's overlay frames on I420 pictures (see the module docstring)."""

    def __init__(self, palette: np.ndarray, legend: Legend | None) -> None:
        colours = np.zeros((256, 3), np.uint8)  # ids past the palette (void) draw black
        colours[: len(palette)] = palette
        yuv = yuv_colours(np.concatenate([colours, np.array([WHITE], np.uint8)]))
        self._luts = [np.ascontiguousarray(yuv[:256, i]).reshape(256, 1) for i in range(3)]
        self._white = tuple(int(x) for x in yuv[256])
        self._legend = legend
        self._strips: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def draw(self, i420: np.ndarray, labels: np.ndarray, keyframe: bool) -> np.ndarray:
        """A new I420 frame: ``labels`` blended over the picture ``i420``, the legend strip of
        the classes present at the bottom, a white border on keyframes."""
        out = np.empty_like(i420)
        ids = np.ascontiguousarray(labels, dtype=np.uint8)
        (y, u, v), (sy, su, sv) = planes_of(out), planes_of(i420)
        cv2.addWeighted(sy, 1 - ALPHA, cv2.LUT(ids, self._luts[0]), ALPHA, 0, dst=y)
        for plane, src, lut in ((u, su, self._luts[1]), (v, sv, self._luts[2])):
            # each chroma sample: the mean of its 2x2 block's label colours
            colour = cv2.resize(cv2.LUT(ids, lut), (src.shape[1], src.shape[0]),
                                interpolation=cv2.INTER_AREA)  # fmt: skip
            cv2.addWeighted(src, 1 - ALPHA, colour, ALPHA, 0, dst=plane)
        if self._legend is not None:
            self._paste_strip(out, ids)
        if keyframe:
            self._border(out)
        return out

    def _paste_strip(self, out: np.ndarray, ids: np.ndarray) -> None:
        y, u, v = planes_of(out)
        h, w = y.shape
        present = self._legend.present(ids)
        key = (present, w)
        strip = self._strips.get(key)
        if strip is None:
            rgb = self._legend.strip(present, w)
            rgb = rgb[len(rgb) % 2 :]  # an even number of rows: chroma rows pair with luma's
            strip = rgb_to_i420(rgb)
            self._strips[key] = strip
            if len(self._strips) > CACHE:
                self._strips.popitem(last=False)
        sy, su, sv = planes_of(strip)
        rows = min(len(sy), h) // 2 * 2
        y[h - rows :] = sy[len(sy) - rows :]
        u[(h - rows) // 2 :] = su[(len(sy) - rows) // 2 :]
        v[(h - rows) // 2 :] = sv[(len(sy) - rows) // 2 :]

    def _border(self, out: np.ndarray) -> None:
        """The RGB path's white rectangle (:func:`~bmvseg.data.classes.border_width`), in each
        plane (chroma at half the width, rounded up)."""
        y, u, v = planes_of(out)
        h, w = y.shape
        t = border_width(h, w)
        for plane, value, width in zip((y, u, v), self._white, (t, -(-t // 2), -(-t // 2)),
                                       strict=True):  # fmt: skip
            ph, pw = plane.shape
            cv2.rectangle(plane, (0, 0), (pw - 1, ph - 1), value, width)
