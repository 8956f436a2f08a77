"""Procedural textures for the synthetic street: colour mip pyramids plus a per-texel class map.

Why a class map per texel: a pixel's label is the class of the texel its ray hits (nearest texel),
so labels are a property of the surface point and move exactly with it, like the colours.
Why mip pyramids: far and grazing surfaces (the road near the horizon) would otherwise alias and
flicker from frame to frame, which real footage does not do and which would confuse the codec.

Cut-out objects (cars, people, trees, poles, fences) are in :mod:`.sprites`.

Texel convention: texel ``(row, col)`` covers ``[col, col+1) x [row, row+1)`` in texture coordinates
``(tu, tv)``; ``tu`` runs along the image width, ``tv`` down the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from bmvseg.data.classes import CAMVID_CLASSES

CLS = {name: i for i, name in enumerate(CAMVID_CLASSES)}
CLEAR = 255  # texel not part of the surface (the ray passes through)


@dataclass
class Texture:
    """RGB mip pyramid (uint8) and a class map of the base level (uint8, 255 = transparent)."""

    levels: list[np.ndarray]
    classes: np.ndarray
    wrap: bool = False
    scales: list[float] = field(default_factory=list)  # level size / base size, per level

    @property
    def width(self) -> int:
        return self.classes.shape[1]

    @property
    def height(self) -> int:
        return self.classes.shape[0]

    def flipped(self) -> Texture:
        """The mirror image (the other side of a car)."""
        return make_texture(np.ascontiguousarray(self.levels[0][:, ::-1]), self.classes[:, ::-1])


def make_texture(rgb: np.ndarray, classes: np.ndarray, wrap: bool = False) -> Texture:
    """Build the pyramid; transparent texels take the mean colour so blurred levels do not bleed."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    classes = np.ascontiguousarray(classes, dtype=np.uint8)
    clear = classes == CLEAR
    if clear.any() and not clear.all():
        rgb = rgb.copy()
        rgb[clear] = rgb[~clear].mean(axis=0).astype(np.uint8)
    levels = [rgb]
    while min(levels[-1].shape[:2]) > 2 and len(levels) < 9:
        levels.append(_down(levels[-1], wrap))
    scales = [lv.shape[1] / rgb.shape[1] for lv in levels]
    return Texture(levels, classes, wrap, scales)


def _down(img: np.ndarray, wrap: bool) -> np.ndarray:
    """One pyramid level down; a wrapping texture is padded periodically so its seam stays clean."""
    if not wrap or img.shape[0] % 2 or img.shape[1] % 2:
        return cv2.pyrDown(img, borderType=cv2.BORDER_REPLICATE)
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)), mode="wrap")
    return cv2.pyrDown(padded)[2:-2, 2:-2]


# --- noise --------------------------------------------------------------------------------------


_BANK_SIZE = 1024
_banks: dict[int, np.ndarray] = {}
FEATURES = (2, 4, 16, 32, 128, 512)  # noise feature sizes (texels) in the bank


def _bank(feature: int) -> np.ndarray:
    """A tileable 1024^2 fractal noise image, built once per process from a fixed seed.

    Textures take random (wrapping) crops of it, so a texture is still a function of its own
    seed, and scenes build fast.
    """
    if feature not in _banks:
        rng = np.random.default_rng(feature)
        n = _BANK_SIZE
        out = np.zeros((n, n), np.float32)
        amp, total, cells = 1.0, 0.0, 2 ** max(0, round(np.log2(n / feature)))
        while cells <= n // 2:
            step = n // cells
            grid = np.pad(rng.random((cells, cells), dtype=np.float32), 2, mode="wrap")
            up = cv2.resize(grid, ((cells + 4) * step,) * 2, interpolation=cv2.INTER_CUBIC)
            out += amp * up[2 * step : 2 * step + n, 2 * step : 2 * step + n]
            total += amp
            amp *= 0.5
            cells *= 2
        _banks[feature] = ((out - out.min()) / max(float(out.max() - out.min()), 1e-6)).astype(
            np.float16
        )
    return _banks[feature]


def fbm(rng: np.random.Generator, h: int, w: int, feature: float) -> np.ndarray:
    """Fractal noise in [0, 1], (h, w) float32, blobs about ``feature`` texels across.

    Periodic with period 1024 in both directions (the ground and sky tiles rely on it).
    """
    f = min(FEATURES, key=lambda k: abs(np.log(k / max(feature, 1))))
    oy, ox = (int(v) for v in rng.integers(0, _BANK_SIZE, 2))
    rows = (oy + np.arange(h)) % _BANK_SIZE
    cols = (ox + np.arange(w)) % _BANK_SIZE
    return _bank(f)[rows[:, None], cols[None, :]].astype(np.float32)


def tint(base: tuple[float, float, float], shade: np.ndarray) -> np.ndarray:
    """(h, w) multiplier around 1 times an RGB colour -> (h, w, 3) float."""
    return shade[..., None] * np.asarray(base, np.float32)[None, None, :]


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 255).astype(np.uint8)


# --- ground -------------------------------------------------------------------------------------

GROUND_TPM = 20.0  # texels per metre
GROUND_SIZE = (1024, 1024)  # (rows along -z, cols along x); powers of two so wrapped levels align


@dataclass(frozen=True)
class RoadLayout:
    """Cross-section of the street (metres from the road's centre line, x to the right)."""

    lane_width: float
    lanes_each_way: int
    parking: float  # parking strip at each kerb, part of the road class
    pavement: float

    @property
    def road_half(self) -> float:
        return self.lanes_each_way * self.lane_width + self.parking

    @property
    def kerb_outer(self) -> float:
        return self.road_half + self.pavement


def ground_texture(rng: np.random.Generator, road: RoadLayout) -> Texture:
    """Asphalt with lane markings inside ``road_half``, paving slabs outside; wraps along z."""
    rows, cols = GROUND_SIZE
    x = (np.arange(cols, dtype=np.float32) + 0.5) / GROUND_TPM - cols / (2 * GROUND_TPM)
    z = (np.arange(rows, dtype=np.float32) + 0.5) / GROUND_TPM  # along -z (texture rows)
    X, Z = np.meshgrid(x, z)
    ax = np.abs(X)
    grain = fbm(rng, rows, cols, 2)
    patches = fbm(rng, rows, cols, 128)
    stains = fbm(rng, rows, cols, 16)
    tone = rng.uniform(70, 95)
    asphalt = tint(
        (1.0, 1.0, 1.04),
        tone * (0.86 + 0.22 * grain + 0.12 * (patches - 0.5) + 0.08 * (stains - 0.5)),
    )
    slab = 0.55 + 0.9 * (rng.uniform(0.4, 0.6))
    pav_base = np.array([150, 145, 138], np.float32) * slab
    joints = (np.mod(X, 0.6) < 0.04) | (np.mod(Z, 0.6) < 0.04)
    pav_shade = 0.85 + 0.25 * grain + 0.15 * (patches - 0.5) - 0.25 * joints
    pavement = tint(tuple(pav_base), pav_shade)
    on_road = ax < road.road_half
    img = np.where(on_road[..., None], asphalt, pavement)
    # kerb stone: a light band along the road edge (pavement class)
    kerb = (ax >= road.road_half) & (ax < road.road_half + 0.25)
    img[kerb] = np.array([185, 182, 175], np.float32) * (0.9 + 0.15 * grain[kerb, None])
    white = np.array([225, 225, 215], np.float32)
    paint = np.zeros_like(ax, dtype=bool)
    period = rows / GROUND_TPM / 6  # six dashes per tile so the texture wraps cleanly
    dash = np.mod(Z, period) < 3.0
    w = 0.12
    paint |= (np.abs(X) < w) & dash  # centre line
    for k in range(1, road.lanes_each_way):  # lane dividers
        paint |= (np.abs(ax - k * road.lane_width) < w / 2) & dash
    edge = road.lanes_each_way * road.lane_width
    paint |= np.abs(ax - edge) < w / 2  # solid line at the parking strip
    img[paint] = white * (0.88 + 0.12 * grain[paint, None])
    classes = np.where(on_road, CLS["road"], CLS["pavement"]).astype(np.uint8)
    return make_texture(to_u8(img), classes, wrap=True)


def sky_texture(rng: np.random.Generator, size: tuple[int, int] = (256, 1024)) -> Texture:
    """Sky over (azimuth, elevation): blue gradient plus soft clouds; rows = elevation 1.2..-0.1."""
    rows, cols = size
    elev = np.linspace(1.2, -0.1, rows, dtype=np.float32)[:, None]
    t = np.clip(elev / 0.9, 0, 1) ** 0.6
    horizon = np.array([205, 215, 225], np.float32) * rng.uniform(0.95, 1.05)
    zenith = np.array(
        [rng.uniform(55, 90), rng.uniform(110, 140), rng.uniform(190, 225)], np.float32
    )
    grad = horizon * (1 - t[..., None]) + zenith * t[..., None]
    grad = np.broadcast_to(grad, (rows, cols, 3))
    cover = rng.uniform(0.35, 0.65)
    n = fbm(rng, rows, cols, 128)
    cloud = np.clip((n - (1 - cover)) / 0.25, 0, 1)[..., None] ** 1.2
    shade = (0.8 + 0.2 * fbm(rng, rows, cols, 40))[..., None]
    img = grad * (1 - cloud) + np.array([238, 238, 240], np.float32) * shade * cloud
    return make_texture(to_u8(img), np.full((rows, cols), CLS["sky"], np.uint8), wrap=True)


# --- buildings ----------------------------------------------------------------------------------

FACADE_TPM = 20.0


def facade_texture(rng: np.random.Generator, width_m: float, height_m: float) -> Texture:
    """Wall with floors of windows, a ground floor of shop fronts or doors, a cornice."""
    w, h = max(8, round(width_m * FACADE_TPM)), max(8, round(height_m * FACADE_TPM))
    palette = [
        (190, 170, 140), (160, 95, 75), (205, 200, 190), (140, 135, 130),
        (215, 190, 150), (120, 80, 60), (175, 180, 175), (225, 215, 195),
    ]  # fmt: skip
    base = np.array(palette[rng.integers(len(palette))], np.float32) * rng.uniform(0.85, 1.1)
    grime = fbm(rng, h, w, 128)
    fine = fbm(rng, h, w, 4)
    img = tint(tuple(base), 0.82 + 0.2 * grime + 0.12 * fine)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / FACADE_TPM
    if rng.random() < 0.4:  # brick courses
        course = np.mod(yy, 0.075) < 0.012
        img[course] *= 0.85
    floor_h = rng.uniform(2.9, 3.6)
    win_w, win_h = rng.uniform(0.9, 1.6), rng.uniform(1.3, 1.9)
    spacing = win_w + rng.uniform(0.8, 2.0)
    n_cols = max(1, int((width_m - 1.0) // spacing))
    margin = (width_m - n_cols * spacing) / 2
    glass = np.array([rng.uniform(40, 80), rng.uniform(55, 90), rng.uniform(70, 110)], np.float32)
    frame_col = np.array([230, 228, 220], np.float32) * rng.uniform(0.6, 1.0)
    ground_h = rng.uniform(3.2, 4.2)
    top = height_m - 0.6  # metres from the top edge of the texture, y grows downward in yy
    floors_top = 0.8  # cornice band
    y0 = floors_top + 0.5
    while y0 + win_h < height_m - ground_h:
        for c in range(n_cols):
            x0 = margin + c * spacing + (spacing - win_w) / 2
            _window(img, x0, y0, win_w, win_h, glass, frame_col, rng)
        y0 += floor_h
    del top
    # ground floor: shop windows and doors
    gy = height_m - ground_h
    x0 = 0.4
    while x0 < width_m - 1.5:
        seg = rng.uniform(2.0, 5.0)
        seg = min(seg, width_m - 0.4 - x0)
        if rng.random() < 0.3:
            _rect(img, x0 + 0.3, height_m - 2.3, 1.1, 2.3, np.array([70, 50, 40], np.float32))
        else:
            _window(img, x0 + 0.2, gy + 0.9, seg - 0.4, ground_h - 1.4, glass * 1.3, frame_col, rng)
            if rng.random() < 0.5:  # shop sign band (part of the building in CamVid)
                col = rng.uniform(60, 230, 3).astype(np.float32)
                _rect(img, x0 + 0.2, gy + 0.2, seg - 0.4, 0.55, col)
        x0 += seg + 0.3
    _rect(img, 0, 0, width_m, 0.5, base * 0.7)  # cornice
    _rect(img, 0, gy, width_m, 0.15, base * 0.75)
    return make_texture(to_u8(img), np.full((h, w), CLS["building"], np.uint8))


def _rect(img: np.ndarray, x: float, y: float, w: float, h: float, col: np.ndarray) -> None:
    """Fill a rectangle given in metres (texture at FACADE_TPM)."""
    s = FACADE_TPM
    r0, r1 = max(0, round(y * s)), min(img.shape[0], round((y + h) * s))
    c0, c1 = max(0, round(x * s)), min(img.shape[1], round((x + w) * s))
    if r1 > r0 and c1 > c0:
        img[r0:r1, c0:c1] = col


def _window(img, x, y, w, h, glass, frame_col, rng) -> None:
    _rect(img, x - 0.08, y - 0.08, w + 0.16, h + 0.16, frame_col)
    s = FACADE_TPM
    r0, r1 = round(y * s), round((y + h) * s)
    c0, c1 = round(x * s), round((x + w) * s)
    r0, c0 = max(r0, 0), max(c0, 0)
    r1, c1 = min(r1, img.shape[0]), min(c1, img.shape[1])
    if r1 <= r0 or c1 <= c0:
        return
    gy = np.linspace(1.25, 0.75, r1 - r0, dtype=np.float32)[:, None, None]
    lit = 1.0 + (rng.random() < 0.15) * 1.2  # a few bright (reflecting or lit) panes
    img[r0:r1, c0:c1] = glass * gy * lit * rng.uniform(0.85, 1.15)
    if w > 1.2:  # mullion
        mid = (c0 + c1) // 2
        img[r0:r1, max(mid - 1, 0) : mid + 1] = frame_col
