"""The 3-D street a clip is rendered from: a pinhole camera path and textured planar quads.

World frame (metres): x to the right of the road's centre line, y up, z along the road (the
direction of travel); the ground is the plane y = 0.  Everything except the ground and the sky
is a flat rectangle ("quad"): building fronts and ends, the faces of cars, cut-outs of trees,
poles and people, fences.  A quad is rigid and moves with a constant velocity, so where any of
its points was one frame earlier is known exactly; that is where the exact flow comes from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bmvseg.data.synthetic import sprites as sp
from bmvseg.data.synthetic import textures as tx


@dataclass(frozen=True)
class Camera:
    """Pinhole camera moving forward along the road while panning (yaw) and swaying a little.

    ``pose(t)`` gives the centre ``C`` and the rotation ``R`` whose columns are the camera's
    right, up and forward axes in world coordinates.  Pixel ``(x, y)`` has its centre at
    ``(x + 0.5, y + 0.5)``; a camera point ``(X, Y, Z)`` projects to
    ``(cx + f X / Z, cy - f Y / Z)``.
    """

    width: int
    height: int
    fov_deg: float = 68.0
    x0: float = 1.75
    eye: float = 1.5
    speed: float = 8.0
    speed_amp: float = 0.8
    speed_period: float = 7.0
    yaw_amp: float = 0.12
    yaw_period: float = 9.0
    yaw_phase: float = 0.0
    yaw_bias: float = 0.0
    pitch: float = -0.04
    sway_amp: float = 0.25
    sway_period: float = 6.0

    @property
    def focal(self) -> float:
        return self.width / 2 / np.tan(np.radians(self.fov_deg) / 2)

    @property
    def principal(self) -> tuple[float, float]:
        return self.width / 2, self.height * 0.48

    def pose(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        w_s = 2 * np.pi / self.speed_period
        z = self.speed * t - self.speed_amp / w_s * (np.cos(w_s * t) - 1)
        x = self.x0 + self.sway_amp * np.sin(2 * np.pi * t / self.sway_period)
        y = self.eye + 0.02 * np.sin(2 * np.pi * t / 0.9)
        yaw = self.yaw_bias + self.yaw_amp * np.sin(
            2 * np.pi * t / self.yaw_period + self.yaw_phase
        )
        pitch = self.pitch + 0.01 * np.sin(2 * np.pi * t / 3.1)
        cp, sp, cy_, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
        forward = np.array([sy * cp, sp, cy_ * cp])
        right = np.array([cy_, 0.0, -sy])
        up = np.cross(forward, right)
        return np.array([x, y, z]), np.stack([right, up, forward], axis=1)


@dataclass
class Quad:
    """A textured rectangle: texel (0, 0) at ``origin``, ``u`` spans the texture's width, ``v``
    its height (downwards).  ``u x v`` points to the visible side unless ``two_sided``."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    texture: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # m/s
    two_sided: bool = False


@dataclass
class TextureSlot:
    """A texture made on first use from its own seed, so it can be dropped and remade exactly."""

    make: Callable[..., tx.Texture]
    seed: int
    args: tuple = ()
    tex: tx.Texture | None = None

    def get(self) -> tx.Texture:
        if self.tex is None:
            self.tex = self.make(np.random.default_rng(self.seed), *self.args)
        return self.tex


@dataclass
class Scene:
    camera: Camera
    road: tx.RoadLayout
    slots: list[TextureSlot]
    quads: list[Quad]
    ground: int  # texture index
    sky: int
    sun: np.ndarray  # unit vector towards the sun
    fog_color: np.ndarray
    light_phase: float

    def add_texture(self, rng: np.random.Generator, make: Callable[..., tx.Texture], *args) -> int:
        """Register ``make(rng, *args)``; its seed is drawn from the layout's ``rng`` now."""
        self.slots.append(TextureSlot(make, int(rng.integers(2**62)), args))
        return len(self.slots) - 1

    def texture(self, k: int) -> tx.Texture:
        return self.slots[k].get()

    def release(self, ks) -> None:
        """Forget textures that will not be seen again (they are remade if they are)."""
        for k in ks:
            self.slots[k].tex = None


def _face_x(
    x: float, z0: float, z1: float, y0: float, y1: float, toward_plus: bool, tex: int
) -> Quad:
    """A quad in the plane x = const spanning z0..z1, y0..y1, visible from +x or -x."""
    if toward_plus:  # seen from +x looking -x: right is +z
        return Quad(
            np.array([x, y1, z0]), np.array([0, 0, z1 - z0]), np.array([0, y0 - y1, 0]), tex
        )
    return Quad(np.array([x, y1, z1]), np.array([0, 0, z0 - z1]), np.array([0, y0 - y1, 0]), tex)


def _face_z(
    z: float, x0: float, x1: float, y0: float, y1: float, toward_minus: bool, tex: int
) -> Quad:
    """A quad in the plane z = const spanning x0..x1, visible from -z (ahead of the camera)."""
    if toward_minus:
        return Quad(
            np.array([x0, y1, z]), np.array([x1 - x0, 0, 0]), np.array([0, y0 - y1, 0]), tex
        )
    return Quad(np.array([x1, y1, z]), np.array([x0 - x1, 0, 0]), np.array([0, y0 - y1, 0]), tex)


def build_scene(seed: int, width: int, height: int, duration: float) -> Scene:
    """Lay out a street for a clip of ``duration`` seconds, deterministically from ``seed``."""
    rng = np.random.default_rng(seed)
    road = tx.RoadLayout(
        lane_width=float(rng.uniform(3.2, 3.7)),
        lanes_each_way=int(rng.integers(1, 3)),
        parking=float(rng.uniform(2.0, 2.6)),
        pavement=float(rng.uniform(3.5, 6.0)),
    )
    lane = road.lanes_each_way * road.lane_width - road.lane_width / 2
    cam = Camera(
        width,
        height,
        x0=lane,
        speed=float(rng.uniform(6.5, 10.0)),
        yaw_amp=float(rng.uniform(0.06, 0.16)),
        yaw_period=float(rng.uniform(6.0, 11.0)),
        yaw_phase=float(rng.uniform(0, 2 * np.pi)),
        yaw_bias=float(rng.uniform(-0.05, 0.05)),
        sway_amp=float(rng.uniform(0.0, 0.3)),
    )
    sun = np.array([rng.uniform(-0.7, 0.7), rng.uniform(0.4, 0.8), rng.uniform(-0.3, 0.6)])
    scene = Scene(
        camera=cam,
        road=road,
        slots=[],
        quads=[],
        ground=0,
        sky=0,
        sun=sun / np.linalg.norm(sun),
        fog_color=np.array([200, 208, 215], np.float32),
        light_phase=float(rng.uniform(0, 2 * np.pi)),
    )
    scene.ground = scene.add_texture(rng, tx.ground_texture, road)
    scene.sky = scene.add_texture(rng, tx.sky_texture)
    z_lo, z_hi = -25.0, cam.speed * duration + cam.speed_amp * 2 + 230.0
    for side in (-1, 1):
        _street_side(scene, rng, side, z_lo, z_hi)
    _traffic(scene, rng, z_lo, z_hi, duration)
    return scene


def _street_side(
    scene: Scene, rng: np.random.Generator, side: int, z_lo: float, z_hi: float
) -> None:
    """Buildings, trees, lamps, signs, fences and pedestrians on one side (side = -1 or +1)."""
    road = scene.road
    front = road.kerb_outer
    z = z_lo
    while z < z_hi:  # buildings, with the odd gap (a yard behind a fence, trees)
        length = float(rng.uniform(8.0, 28.0))
        if rng.random() < 0.12:
            gap = float(rng.uniform(6.0, 14.0))
            fx = side * (front + 0.3)
            tex = scene.add_texture(rng, sp.fence_texture, gap, 1.2)
            scene.quads.append(_face_x(fx, z, z + gap, 0.0, 1.2, side < 0, tex))
            scene.quads[-1].two_sided = True
            for _ in range(int(rng.integers(1, 3))):
                _tree(scene, rng, side * (front + rng.uniform(2.5, 6.0)), z + rng.uniform(0, gap))
            z += gap
            continue
        setback = float(rng.uniform(0.0, 2.0)) if rng.random() < 0.5 else 0.0
        bh = float(rng.uniform(7.0, 24.0))
        x = front + setback
        depth = 14.0
        tex = scene.add_texture(rng, tx.facade_texture, length, bh)
        if side < 0:
            scene.quads.append(_face_x(-x, z, z + length, 0.0, bh, True, tex))
            end = scene.add_texture(rng, tx.facade_texture, depth, bh)
            scene.quads.append(_face_z(z, -x - depth, -x, 0.0, bh, True, end))
        else:
            scene.quads.append(_face_x(x, z, z + length, 0.0, bh, False, tex))
            end = scene.add_texture(rng, tx.facade_texture, depth, bh)
            scene.quads.append(_face_z(z, x, x + depth, 0.0, bh, True, end))
        z += length
    kerb = road.road_half + 0.6
    z = z_lo + rng.uniform(0, 10)
    while z < z_hi:  # street furniture along the kerb
        r = rng.random()
        if r < 0.45:
            _tree(scene, rng, side * (kerb + rng.uniform(0.2, 1.0)), z)
        elif r < 0.75:
            _pole(scene, rng, side * kerb, z, "lamp")
        elif r < 0.9:
            _pole(scene, rng, side * kerb, z, "sign")
        else:
            _pole(scene, rng, side * kerb, z, "light")
        z += float(rng.uniform(7.0, 16.0))
    # railings along the kerb now and then
    z = z_lo
    while z < z_hi:
        z += float(rng.uniform(30.0, 90.0))
        length = float(rng.uniform(5.0, 15.0))
        tex = scene.add_texture(rng, sp.fence_texture, length, 1.0)
        q = _face_x(side * (road.road_half + 0.35), z, z + length, 0.0, 1.0, side < 0, tex)
        q.two_sided = True
        scene.quads.append(q)
        z += length
    # pedestrians walking along the pavement, both ways
    n = int(rng.integers(12, 24))
    for _ in range(n):
        height = float(rng.uniform(1.55, 1.9))
        tex = scene.add_texture(rng, sp.person_texture, height)
        w = 0.6
        px = side * (road.road_half + rng.uniform(0.9, road.pavement - 0.4))
        pz = float(rng.uniform(z_lo + 10, z_hi - 40))
        speed = float(rng.uniform(0.9, 1.7)) * (1 if rng.random() < 0.5 else -1)
        q = _face_z(pz, px - w / 2, px + w / 2, 0.0, height, True, tex)
        q.velocity = np.array([0.0, 0.0, speed])
        q.two_sided = True
        scene.quads.append(q)


def _tree(scene: Scene, rng: np.random.Generator, x: float, z: float) -> None:
    h = float(rng.uniform(4.5, 9.0))
    w = h * float(rng.uniform(0.5, 0.75))
    tex = scene.add_texture(rng, sp.tree_texture, h, w)
    q = _face_z(z, x - w / 2, x + w / 2, 0.0, h, True, tex)
    q.two_sided = True
    scene.quads.append(q)


def _pole(scene: Scene, rng: np.random.Generator, x: float, z: float, kind: str) -> None:
    h = {"lamp": float(rng.uniform(6.5, 8.5)), "sign": float(rng.uniform(2.6, 3.2))}.get(
        kind, float(rng.uniform(3.4, 4.0))
    )
    w = sp.pole_width(kind)
    flip = x > 0 and kind == "lamp"  # the lamp arm reaches over the road
    if flip:
        x0 = x - w + 0.15
    elif kind == "lamp":
        x0 = x - 0.15
    else:
        x0 = x - w / 2
    q = _face_z(z, x0, x0 + w, 0.0, h, True, scene.add_texture(rng, sp.pole_texture, h, kind, flip))
    q.two_sided = True
    scene.quads.append(q)


def _panel(x: float, w: float, za: float, ya: float, zb: float, yb: float, tex: int) -> Quad:
    """A strip across a car (width ``w`` centred on ``x``) from (za, ya) to (zb, yb), facing up."""
    if za < zb:
        za, ya, zb, yb = zb, yb, za, ya
    return Quad(np.array([x - w / 2, ya, za]), np.array([w, 0, 0]), np.array([0, yb - ya, zb - za]),
                tex)  # fmt: skip


def _car(
    scene: Scene, rng: np.random.Generator, x: float, z: float, velocity: float, oncoming: bool
) -> None:
    """A car as a box of textured quads: the face towards -z, both sides and the roof."""
    length = float(rng.uniform(3.9, 4.9))
    width = float(rng.uniform(1.7, 1.9))
    height = float(rng.uniform(1.4, 1.6))
    parts = sp.CarTextures(int(rng.integers(2**62)), length, width, height)
    ids = {
        k: scene.add_texture(rng, parts.part, k)
        for k in ("left", "right", "rear", "front", "roof", "glass")
    }
    x0, x1, z0, z1 = x - width / 2, x + width / 2, z, z + length
    # oncoming cars show their front to a camera behind them (looking +z), others their rear
    faces = [
        _face_z(z0, x0, x1, 0.0, height, True, ids["front" if oncoming else "rear"]),
        # left side (x = x0) seen from -x; its texture has the car's front (+z) on the viewer's left
        # for a car driving +z; an oncoming car drives -z, so its front is at z0: mirror it
        _face_x(x0, z0, z1, 0.0, height, False, ids["right" if oncoming else "left"]),
        _face_x(x1, z0, z1, 0.0, height, True, ids["left" if oncoming else "right"]),
    ]
    # the top of the body, following the silhouette of the side texture (front to back: bonnet,
    # windscreen, roof, rear window, boot), so that nothing shows through from above or aside
    front, back = (z0, 1.0) if oncoming else (z1, -1.0)
    at = [front + back * f * length for f in (0.02, 0.2, 0.3, 0.78, 0.92, 0.99)]
    low, high = 0.48 * height, 0.93 * height
    profile = [(at[0], low, at[1], low, "roof", 0.96), (at[1], low, at[2], high, "glass", 0.7),
               (at[2], high, at[3], high, "roof", 0.7), (at[3], high, at[4], low, "glass", 0.7),
               (at[4], low, at[5], low, "roof", 0.96)]  # fmt: skip
    for za, ya, zb, yb, part, wf in profile:
        faces.append(_panel(x, wf * width, za, ya, zb, yb, ids[part]))
    for q in faces:
        q.velocity = np.array([0.0, 0.0, velocity])
        scene.quads.append(q)


def _traffic(
    scene: Scene, rng: np.random.Generator, z_lo: float, z_hi: float, duration: float
) -> None:
    """Parked cars, cars in both directions, cyclists near the kerb."""
    road, cam = scene.road, scene.camera
    for side in (-1, 1):  # parked
        z = z_lo + rng.uniform(0, 8)
        park_x = side * (road.road_half - road.parking / 2 - 0.1)
        while z < z_hi:
            if rng.random() < 0.45:
                _car(scene, rng, park_x + rng.uniform(-0.15, 0.15), z, 0.0, rng.random() < 0.5)
                z += 5.5 + rng.uniform(0, 1.5)
            else:
                z += rng.uniform(6.0, 20.0)
    travelled = cam.speed * duration
    for k in range(road.lanes_each_way):
        lane_x = k * road.lane_width + road.lane_width / 2
        own = abs(lane_x - cam.x0) < 0.1
        # same direction: in the camera's lane a car keeps ahead at about the camera's speed
        z = 12.0 if own else -25.0
        while z < z_hi:
            v = cam.speed * (rng.uniform(0.95, 1.05) if own else rng.uniform(0.7, 1.5))
            _car(scene, rng, lane_x - rng.uniform(0.1, 0.35), z + rng.uniform(0, 10), v, False)
            z += (rng.uniform(40.0, 90.0) if own else rng.uniform(15.0, 60.0)) + 5
        # oncoming: spread so that they pass the camera during the clip
        z = 15.0
        while z < z_hi + 2 * travelled:
            v = -float(rng.uniform(7.0, 13.0))
            _car(scene, rng, -lane_x + rng.uniform(0.1, 0.35), z, v, True)
            z += float(rng.uniform(20.0, 70.0))
    for side in (-1, 1):  # cyclists riding along the parking strip's edge; one always ahead
        for k in range(int(rng.integers(0, 3)) + (side > 0)):
            h = float(rng.uniform(1.6, 1.8))
            tex = scene.add_texture(rng, sp.person_texture, h, True)
            bx = side * (road.road_half - road.parking - 0.5)  # clear of cars (kept left)
            bz = float(
                rng.uniform(15.0, 40.0) if k == 0 and side > 0 else rng.uniform(5.0, z_hi - 60)
            )
            v = float(rng.uniform(3.0, 6.0)) * side  # right side rides with the camera
            q = _face_z(bz, bx - 0.375, bx + 0.375, 0.0, h, True, tex)
            q.velocity = np.array([0.0, 0.0, v])
            q.two_sided = True
            scene.quads.append(q)
