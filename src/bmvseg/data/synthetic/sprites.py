"""Cut-out objects: cars, people, trees, poles and signs, fences.

Each is a :class:`~bmvseg.data.synthetic.textures.Texture` whose class map is the silhouette
(255 where the ray passes through) and carries the object's CamVid class per texel: a sign's
plate is "sign", its post "pole"; a cyclist and the bicycle are both "bicyclist".
"""

from __future__ import annotations

import cv2
import numpy as np

from bmvseg.data.synthetic.textures import CLEAR, CLS, Texture, fbm, make_texture, tint, to_u8


def _canvas(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((h, w, 3), np.uint8), np.full((h, w), CLEAR, np.uint8)


def _noise_shade(rng: np.random.Generator, img: np.ndarray, amount: float = 0.12) -> np.ndarray:
    n = fbm(rng, img.shape[0], img.shape[1], 12)
    return to_u8(img.astype(np.float32) * (1 - amount / 2 + amount * n)[..., None])


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
    out["roof"] = make_texture(to_u8(body * shade), full)  # bonnet, roof and boot panels
    sheen = np.linspace(1.4, 0.8, 32, dtype=np.float32)[:, None, None]
    out["glass"] = make_texture(to_u8(np.broadcast_to(glass * sheen, (32, 32, 3))), full)
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
    leaves = tint(tuple(leaf), 0.55 + 0.9 * n)
    m = crown.astype(bool)
    img[m] = to_u8(leaves[m])
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
        img[:] = to_u8(
            col[None, None, :] * planks[None, :, None] * (0.9 + 0.2 * fbm(rng, h, w, 40))[..., None]
        )
        cls[:] = CLS["fence"]
    return make_texture(img, cls)
