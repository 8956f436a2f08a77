"""Procedural textures for the synthetic street: colour mip pyramids plus a per-texel class map.

Why a class map per texel: a pixel's label is the class of the texel its ray hits (nearest texel),
so labels are a property of the surface point and move exactly with it, like the colours.
Why mip pyramids: far and grazing surfaces (the road near the horizon) would otherwise alias and
flicker from frame to frame, which real footage does not do and which would confuse the codec.

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


def _tint(base: tuple[float, float, float], shade: np.ndarray) -> np.ndarray:
    """(h, w) multiplier around 1 times an RGB colour -> (h, w, 3) float."""
    return shade[..., None] * np.asarray(base, np.float32)[None, None, :]


def _u8(x: np.ndarray) -> np.ndarray:
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
    asphalt = _tint(
        (1.0, 1.0, 1.04),
        tone * (0.86 + 0.22 * grain + 0.12 * (patches - 0.5) + 0.08 * (stains - 0.5)),
    )
    slab = 0.55 + 0.9 * (rng.uniform(0.4, 0.6))
    pav_base = np.array([150, 145, 138], np.float32) * slab
    joints = (np.mod(X, 0.6) < 0.04) | (np.mod(Z, 0.6) < 0.04)
    pav_shade = 0.85 + 0.25 * grain + 0.15 * (patches - 0.5) - 0.25 * joints
    pavement = _tint(tuple(pav_base), pav_shade)
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
    return make_texture(_u8(img), classes, wrap=True)


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
    return make_texture(_u8(img), np.full((rows, cols), CLS["sky"], np.uint8), wrap=True)


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
    img = _tint(tuple(base), 0.82 + 0.2 * grime + 0.12 * fine)
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
    return make_texture(_u8(img), np.full((h, w), CLS["building"], np.uint8))


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


# --- sprites (class map decides the silhouette) -------------------------------------------------


def _canvas(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((h, w, 3), np.uint8), np.full((h, w), CLEAR, np.uint8)


def _noise_shade(rng: np.random.Generator, img: np.ndarray, amount: float = 0.12) -> np.ndarray:
    n = fbm(rng, img.shape[0], img.shape[1], 12)
    return _u8(img.astype(np.float32) * (1 - amount / 2 + amount * n)[..., None])


CAR_TPM = 40.0


class CarTextures:
    """The five face textures of one car, made together on first use (they share a colour)."""

    def __init__(self, seed: int, length: float, width: float, height: float):
        self.seed, self.size = seed, (length, width, height)
        self._parts: dict[str, Texture] | None = None

    def part(self, _rng: np.random.Generator, name: str) -> Texture:
        if self._parts is None:
            self._parts = car_textures(np.random.default_rng(self.seed), *self.size)
        return self._parts[name]


def car_textures(
    rng: np.random.Generator, length: float, width: float, height: float
) -> dict[str, Texture]:
    """Side (front to the left), rear, front and roof textures of one car."""
    body = rng.choice(
        np.array(
            [
                [200, 30, 30],
                [230, 230, 230],
                [30, 30, 35],
                [40, 70, 150],
                [150, 150, 155],
                [90, 20, 30],
                [200, 180, 60],
                [60, 110, 80],
                [110, 110, 120],
            ],
            np.float32,  # fmt: skip
        )
    ) * rng.uniform(0.85, 1.1)
    glass = np.array([35, 45, 60], np.float32)
    tire = (25, 25, 25)
    s = CAR_TPM
    out: dict[str, Texture] = {}
    # side view
    w, h = round(length * s), round(height * s)
    img, cls = _canvas(w, h)
    belt = 0.55 * h
    body_poly = np.array(
        [[0.02 * w, h * 0.8], [0.03 * w, belt * 1.05], [0.2 * w, belt * 0.95], [0.3 * w, 0.08 * h],
         [0.78 * w, 0.06 * h], [0.92 * w, belt * 0.95], [0.99 * w, belt], [0.99 * w, h * 0.82]],
        np.int32,
    )  # fmt: skip
    cv2.fillPoly(img, [body_poly], tuple(float(c) for c in body))
    cv2.fillPoly(cls, [body_poly], CLS["car"])
    win = np.array(
        [
            [0.24 * w, belt * 0.93],
            [0.32 * w, 0.14 * h],
            [0.76 * w, 0.13 * h],
            [0.88 * w, belt * 0.93],
        ],
        np.int32,
    )
    cv2.fillPoly(img, [win], tuple(float(c) for c in glass))
    cv2.line(
        img,
        (int(0.54 * w), int(0.13 * h)),
        (int(0.54 * w), int(belt)),
        tuple(float(c) for c in body * 0.6),
        max(1, w // 60),
    )
    cv2.line(
        img,
        (int(0.05 * w), int(0.62 * h)),
        (int(0.97 * w), int(0.62 * h)),
        tuple(float(c) for c in body * 0.7),
        1,
    )
    r = int(0.2 * h)
    for cx in (0.2 * w, 0.8 * w):
        cv2.circle(img, (int(cx), h - r - 1), r, tire, -1)
        cv2.circle(cls, (int(cx), h - r - 1), r, CLS["car"], -1)
        cv2.circle(img, (int(cx), h - r - 1), int(r * 0.55), (150, 150, 150), -1)
    side = make_texture(_noise_shade(rng, img), cls)
    out["left"] = side  # front (+z) to the left when seen from the left (-x)
    out["right"] = side.flipped()
    # rear / front
    w = round(width * s)
    for name, lamp in (("rear", (200, 20, 20)), ("front", (235, 235, 210))):
        img, cls = _canvas(w, h)
        poly = np.array(
            [
                [0.02 * w, h - 2],
                [0.02 * w, belt],
                [0.15 * w, 0.08 * h],
                [0.85 * w, 0.08 * h],
                [0.98 * w, belt],
                [0.98 * w, h - 2],
            ],
            np.int32,  # fmt: skip
        )
        cv2.fillPoly(img, [poly], tuple(float(c) for c in body))
        cv2.fillPoly(cls, [poly], CLS["car"])
        cv2.fillPoly(
            img,
            [
                np.array(
                    [
                        [0.12 * w, belt * 0.92],
                        [0.2 * w, 0.15 * h],
                        [0.8 * w, 0.15 * h],
                        [0.88 * w, belt * 0.92],
                    ],
                    np.int32,
                )
            ],
            tuple(float(c) for c in glass),
        )
        for lx in (0.1, 0.78):
            cv2.rectangle(
                img, (int(lx * w), int(0.62 * h)), (int((lx + 0.12) * w), int(0.7 * h)), lamp, -1
            )
        cv2.rectangle(
            img, (int(0.38 * w), int(0.72 * h)), (int(0.62 * w), int(0.8 * h)), (225, 225, 225), -1
        )
        cv2.rectangle(img, (int(0.05 * w), int(0.86 * h)), (int(0.95 * w), h - 1), (30, 30, 30), -1)
        out[name] = make_texture(_noise_shade(rng, img), cls)
    full = np.full((32, 32), CLS["car"], np.uint8)
    shade = 0.85 + 0.1 * fbm(rng, 32, 32, 16)[..., None]
    out["roof"] = make_texture(_u8(body * shade), full)  # bonnet, roof and boot panels
    sheen = np.linspace(1.4, 0.8, 32, dtype=np.float32)[:, None, None]
    out["glass"] = make_texture(_u8(np.broadcast_to(glass * sheen, (32, 32, 3))), full)
    return out


PERSON_TPM = 60.0


def person_texture(rng: np.random.Generator, height: float, bicycle: bool = False) -> Texture:
    """A pedestrian (or a cyclist on a bicycle, seen from behind) as a flat cut-out."""
    s = PERSON_TPM
    width = 0.75 if bicycle else 0.6
    w, h = round(width * s), round(height * s)
    img, cls = _canvas(w, h)
    label = CLS["bicyclist"] if bicycle else CLS["pedestrian"]
    shirt = tuple(float(c) for c in rng.uniform(20, 230, 3))
    trousers = tuple(float(c) for c in rng.uniform(15, 120, 3))
    skin = tuple(float(c) for c in np.array([225, 180, 150]) * rng.uniform(0.45, 1.0))
    hair = tuple(float(c) for c in rng.uniform(10, 90, 3))
    cx = w / 2
    head_r = 0.065 * h
    head_c = (int(cx), int(0.075 * h))

    def poly(pts, col):  # noqa: E306
        p = np.array(pts, np.int32)
        cv2.fillPoly(img, [p], col)
        cv2.fillPoly(cls, [p], label)

    if bicycle:
        wheel_r = int(0.2 * h)
        cv2.ellipse(
            img,
            (int(cx), h - wheel_r - 1),
            (max(1, int(0.05 * w)), wheel_r),
            0,
            0,
            360,
            (20, 20, 20),
            -1,
        )
        cv2.ellipse(
            cls, (int(cx), h - wheel_r - 1), (max(1, int(0.05 * w)), wheel_r), 0, 0, 360, label, -1
        )
        poly(
            [
                [cx - 0.45 * w, 0.52 * h],
                [cx + 0.45 * w, 0.52 * h],
                [cx + 0.45 * w, 0.55 * h],
                [cx - 0.45 * w, 0.55 * h],
            ],
            (90, 90, 90),
        )
        torso_top, torso_bot, leg_bot = 0.15 * h, 0.5 * h, 0.85 * h
    else:
        torso_top, torso_bot, leg_bot = 0.15 * h, 0.55 * h, h - 1
    poly(
        [
            [cx - 0.2 * w, torso_bot],
            [cx - 0.02 * w, torso_bot],
            [cx - 0.05 * w, leg_bot],
            [cx - 0.2 * w, leg_bot],
        ],
        trousers,
    )
    poly(
        [
            [cx + 0.02 * w, torso_bot],
            [cx + 0.2 * w, torso_bot],
            [cx + 0.2 * w, leg_bot],
            [cx + 0.05 * w, leg_bot],
        ],
        trousers,
    )
    poly(
        [
            [cx - 0.27 * w, torso_top + 0.02 * h],
            [cx + 0.27 * w, torso_top + 0.02 * h],
            [cx + 0.24 * w, torso_bot + 0.02 * h],
            [cx - 0.24 * w, torso_bot + 0.02 * h],
        ],
        shirt,
    )
    poly(
        [
            [cx - 0.36 * w, torso_top + 0.04 * h],
            [cx - 0.27 * w, torso_top + 0.03 * h],
            [cx - 0.28 * w, 0.52 * h],
            [cx - 0.36 * w, 0.5 * h],
        ],
        shirt,
    )
    poly(
        [
            [cx + 0.27 * w, torso_top + 0.03 * h],
            [cx + 0.36 * w, torso_top + 0.04 * h],
            [cx + 0.36 * w, 0.5 * h],
            [cx + 0.28 * w, 0.52 * h],
        ],
        shirt,
    )
    poly(
        [
            [cx - 0.06 * w, torso_top - 0.03 * h],
            [cx + 0.06 * w, torso_top - 0.03 * h],
            [cx + 0.06 * w, torso_top + 0.02 * h],
            [cx - 0.06 * w, torso_top + 0.02 * h],
        ],
        skin,
    )
    cv2.circle(img, head_c, int(head_r), skin, -1)
    cv2.circle(cls, head_c, int(head_r), label, -1)
    cv2.ellipse(img, head_c, (int(head_r), int(head_r)), 0, 180, 360, hair, -1)
    return make_texture(_noise_shade(rng, img, 0.2), cls)


TREE_TPM = 24.0


def tree_texture(rng: np.random.Generator, height: float, width: float) -> Texture:
    """Trunk and a leafy crown of overlapping blobs (all of it the tree class)."""
    s = TREE_TPM
    w, h = round(width * s), round(height * s)
    img, cls = _canvas(w, h)
    trunk_w = max(2, int(0.07 * w))
    bark = tuple(float(c) for c in np.array([85, 65, 45]) * rng.uniform(0.7, 1.1))
    cv2.rectangle(
        img, (w // 2 - trunk_w // 2, int(0.35 * h)), (w // 2 + trunk_w // 2, h - 1), bark, -1
    )
    cv2.rectangle(
        cls, (w // 2 - trunk_w // 2, int(0.35 * h)), (w // 2 + trunk_w // 2, h - 1), CLS["tree"], -1
    )
    crown = np.zeros((h, w), np.uint8)
    for _ in range(28):
        cx = rng.normal(w / 2, w * 0.16)
        cy = rng.normal(0.32 * h, 0.12 * h)
        r = rng.uniform(0.12, 0.22) * w
        cv2.circle(crown, (int(cx), int(cy)), int(r), 1, -1)
    leaf = np.array([rng.uniform(40, 90), rng.uniform(80, 130), rng.uniform(25, 55)], np.float32)
    n = fbm(rng, h, w, 4)
    leaves = _tint(tuple(leaf), 0.55 + 0.9 * n)
    m = crown.astype(bool)
    img[m] = _u8(leaves[m])
    cls[m] = CLS["tree"]
    return make_texture(img, cls)


POLE_TPM = 40.0


def pole_width(kind: str) -> float:
    """Width (m) of the texture of a pole of this kind (the layout needs it before the texture)."""
    return 1.6 if kind == "lamp" else 0.9


def pole_texture(rng: np.random.Generator, height: float, kind: str, flip: bool = False) -> Texture:
    """A street lamp, a sign on a post or a traffic light, mirrored if ``flip``.

    The post is the pole class, the plate / light head the sign class (CamVid's SignSymbol and
    TrafficLight are 'sign').
    """
    s = POLE_TPM
    w, h = round(pole_width(kind) * s), round(height * s)
    img, cls = _canvas(w, h)
    grey = tuple(float(c) for c in np.array([110, 112, 115]) * rng.uniform(0.6, 1.2))
    post_w = max(2, round(0.14 * s))
    x0 = w // 2 - post_w // 2 if kind != "lamp" else round(0.15 * s)
    cv2.rectangle(img, (x0, 0 if kind != "sign" else int(0.2 * h)), (x0 + post_w, h - 1), grey, -1)
    cv2.rectangle(
        cls, (x0, 0 if kind != "sign" else int(0.2 * h)), (x0 + post_w, h - 1), CLS["pole"], -1
    )
    if kind == "lamp":
        cv2.rectangle(img, (x0, 0), (w - 1, round(0.08 * s)), grey, -1)
        cv2.rectangle(cls, (x0, 0), (w - 1, round(0.08 * s)), CLS["pole"], -1)
        cv2.rectangle(img, (w - round(0.5 * s), 0), (w - 1, round(0.18 * s)), (230, 230, 200), -1)
        cv2.rectangle(cls, (w - round(0.5 * s), 0), (w - 1, round(0.18 * s)), CLS["pole"], -1)
    elif kind == "sign":
        col = [(200, 30, 30), (30, 70, 170), (240, 200, 40), (30, 130, 60)][rng.integers(4)]
        c = (w // 2, round(0.12 * h))
        r = round(0.33 * s)
        if rng.random() < 0.5:
            cv2.circle(img, c, r, col, -1)
            cv2.circle(img, c, int(r * 0.7), (240, 240, 240), -1)
            cv2.circle(cls, c, r, CLS["sign"], -1)
        else:
            cv2.rectangle(img, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), col, -1)
            cv2.rectangle(
                img,
                (c[0] - r // 2, c[1] - r // 3),
                (c[0] + r // 2, c[1] + r // 3),
                (240, 240, 240),
                -1,
            )
            cv2.rectangle(cls, (c[0] - r, c[1] - r), (c[0] + r, c[1] + r), CLS["sign"], -1)
    else:  # traffic light head
        bw, bh = round(0.32 * s), round(0.9 * s)
        x, y = w // 2 - bw // 2, round(0.02 * h)
        cv2.rectangle(img, (x, y), (x + bw, y + bh), (30, 32, 30), -1)
        cv2.rectangle(cls, (x, y), (x + bw, y + bh), CLS["sign"], -1)
        on = rng.integers(3)
        for i, col in enumerate([(220, 40, 30), (230, 170, 30), (40, 200, 80)]):
            c2 = col if i == on else tuple(v * 0.3 for v in col)
            cv2.circle(img, (w // 2, y + round((0.16 + 0.28 * i) * s)), round(0.1 * s), c2, -1)
    tex = make_texture(img, cls)
    return tex.flipped() if flip else tex


FENCE_TPM = 40.0


def fence_texture(rng: np.random.Generator, length: float, height: float) -> Texture:
    """Railings (bars between two rails) or a solid board fence; wraps nothing."""
    s = FENCE_TPM
    w, h = round(length * s), round(height * s)
    img, cls = _canvas(w, h)
    if rng.random() < 0.6:
        col = np.array([40, 45, 40], np.float32) * rng.uniform(0.7, 2.5)
        pitch = 0.16
        xs = np.arange(w) / s
        bars = np.mod(xs, pitch) < 0.05
        cls[:, bars] = CLS["fence"]
        for y in (0.05, 0.85):
            cls[round(y * h) : round(y * h) + max(2, round(0.05 * s))] = CLS["fence"]
        img[cls != CLEAR] = col
    else:
        col = np.array([150, 115, 80], np.float32) * rng.uniform(0.6, 1.1)
        planks = 0.85 + 0.15 * (np.mod(np.arange(w) / s, 0.15) > 0.012)
        img[:] = _u8(
            col[None, None, :] * planks[None, :, None] * (0.9 + 0.2 * fbm(rng, h, w, 40))[..., None]
        )
        cls[:] = CLS["fence"]
    return make_texture(img, cls)
