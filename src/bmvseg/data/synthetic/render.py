"""Ray casting of a :class:`~bmvseg.data.synthetic.scene.Scene`: colour, labels and exact flow.

Each pixel's ray (through the pixel centre) is intersected with the ground plane and with every
quad whose projection covers it (vectorised per quad over its bounding box); the nearest hit
wins.  The hit point ``P`` and the velocity of what was hit give the flow exactly: ``P`` was at
``P - velocity / fps`` one frame earlier, and projecting that into the previous camera gives
where the pixel's content was in frame ``t - 1`` (the backward/pull convention of
:mod:`bmvseg.video.motion`).  Colours are sampled from mip-mapped textures at the hit point's
texture coordinates (trilinear), with constant per-face shading, distance fog, a slow global
lighting drift and mild sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from bmvseg.data.synthetic import textures as tx
from bmvseg.data.synthetic.scene import Scene

FAR = 320.0  # metres: quads beyond this are skipped; fog is complete there so nothing pops
FOG_SCALE = 140.0
NOISE_SIGMA = 1.6  # grey levels of sensor noise
BLUR_SIGMA = 0.5  # pixels
SMALL_QUAD = 1500  # quads whose box has at most this many pixels are drawn in one batch
NOISE_PAD = 61  # noise fields are this much larger than a frame; each frame takes random crops
SKY = -2
GROUND = -1


@dataclass
class GBuffer:
    """Per-pixel hit: depth along the optical axis, what was hit, texture coordinates, mip level."""

    depth: np.ndarray  # (H, W) float32, inf = sky
    hit: np.ndarray  # (H, W) int32: quad index, GROUND or SKY
    tex: np.ndarray  # (H, W) int32 texture index
    tu: np.ndarray
    tv: np.ndarray
    lod: np.ndarray
    labels: np.ndarray  # (H, W) uint8


class Renderer:
    """Renders frames of one scene; stateless per frame, so frames can be rendered in any order."""

    def __init__(self, scene: Scene, fps: float, seed: int):
        self.scene, self.fps, self.seed = scene, fps, seed
        cam = scene.camera
        h, w = cam.height, cam.width
        self.f = cam.focal
        self.cx, self.cy = cam.principal
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self.px, self.py = xs + 0.5, ys + 0.5
        self.rays_cam = np.stack(
            [(self.px - self.cx) / self.f, -(self.py - self.cy) / self.f, np.ones_like(xs)], -1
        )
        self.k_inv = np.array(
            [[1 / self.f, 0, -self.cx / self.f], [0, -1 / self.f, self.cy / self.f], [0, 0, 1]]
        )
        self.ray_norm = np.linalg.norm(self.rays_cam, axis=-1)  # rotation keeps it
        h_, w_ = h + NOISE_PAD, w + NOISE_PAD
        rng = np.random.default_rng((seed, 1 << 40))  # two noise fields, mixed per frame
        self.noise = [
            rng.standard_normal((h_, w_, 3), dtype=np.float32) * np.float32(NOISE_SIGMA / 2**0.5)
            for _ in range(2)
        ]
        q = scene.quads
        self.q_origin = np.array([a.origin for a in q], np.float64).reshape(-1, 3)
        self.q_u = np.array([a.u for a in q], np.float64).reshape(-1, 3)
        self.q_v = np.array([a.v for a in q], np.float64).reshape(-1, 3)
        self.q_vel = np.array([a.velocity for a in q], np.float64).reshape(-1, 3)
        self.q_tex = np.array([a.texture for a in q], np.int32)
        self.q_two = np.array([a.two_sided for a in q], bool)
        normals = np.cross(self.q_u, self.q_v)
        self.q_normal = normals / np.linalg.norm(normals, axis=1, keepdims=True)
        lit = self.q_normal @ scene.sun
        lit = np.where(self.q_two, np.abs(lit), np.maximum(lit, 0))
        ground_lit = 0.55 + 0.45 * max(scene.sun[1], 0)
        self.q_shade = ((0.55 + 0.45 * lit) / ground_lit).astype(np.float32)

    # -- geometry ---------------------------------------------------------------------------------

    def time(self, index: int) -> float:
        return index / self.fps

    def gbuffer(self, index: int) -> tuple[GBuffer, np.ndarray, np.ndarray, np.ndarray]:
        """The hits of frame ``index`` and the world rays, camera centre and rotation."""
        t = self.time(index)
        C, R = self.scene.camera.pose(t)
        rays = (self.rays_cam @ R.T.astype(np.float32)).astype(np.float32)
        h, w = rays.shape[:2]
        g = GBuffer(
            depth=np.full((h, w), np.inf, np.float32),
            hit=np.full((h, w), SKY, np.int32),
            tex=np.full((h, w), self.scene.sky, np.int32),
            tu=np.zeros((h, w), np.float32),
            tv=np.zeros((h, w), np.float32),
            lod=np.zeros((h, w), np.float32),
            labels=np.full((h, w), tx.CLS["sky"], np.uint8),
        )
        self._ground(g, rays, C, R)
        self._quads(g, rays, C, R, t)
        self._sky(g, rays)
        return g, rays, C, R

    def _ground(self, g: GBuffer, rays: np.ndarray, C: np.ndarray, R: np.ndarray) -> None:
        dy = rays[..., 1]
        m = dy < -1e-4
        s = np.where(m, -C[1] / np.where(m, dy, -1.0), np.inf).astype(np.float32)
        s = np.minimum(s, 1e5)
        d = rays[m]
        sm = s[m]
        P = C.astype(np.float32) + sm[:, None] * d
        tex = self.scene.texture(self.scene.ground)
        rows, cols = tex.height, tex.width
        tu = (P[:, 0] + cols / (2 * tx.GROUND_TPM)) * tx.GROUND_TPM
        tv = np.mod(-P[:, 2] * tx.GROUND_TPM, rows)
        tu = np.clip(tu, 0.0, cols - 1e-3)
        lod = self._lod(sm, d[:, 1], self.ray_norm[m], tx.GROUND_TPM)
        g.depth[m] = sm
        g.hit[m] = GROUND
        g.tex[m] = self.scene.ground
        g.tu[m], g.tv[m], g.lod[m] = tu, tv, lod
        g.labels[m] = tex.classes[tv.astype(np.int32) % rows, tu.astype(np.int32)]

    def _lod(self, s: np.ndarray, nd: np.ndarray, dnorm: np.ndarray, tpm) -> np.ndarray:
        """Mip level of a hit at ray parameter ``s`` on a plane with ``n.d = nd``.

        A pixel spans about ``s / f`` metres across the ray, stretched by ``|d| / |n.d|`` along the
        plane's slope; up to 2:1 anisotropy is kept sharp (far road), beyond that it blurs, as
        anisotropic filtering would, so that nothing shimmers.  ``tpm``: texels per metre.
        """
        minor = s * np.float32(tpm / self.f)
        major = minor * dnorm / np.maximum(np.abs(nd), 1e-3)
        return np.log2(np.maximum(np.maximum(minor, major * 0.5), 1e-6))

    def _quads(self, g: GBuffer, rays: np.ndarray, C: np.ndarray, R: np.ndarray, t: float) -> None:
        if not len(self.q_origin):
            return
        h, w = g.depth.shape
        origin = self.q_origin + self.q_vel * t
        corners = np.stack(
            [origin, origin + self.q_u, origin + self.q_u + self.q_v, origin + self.q_v], 1
        )  # (N, 4, 3)
        cam = (corners - C) @ R  # camera coordinates
        z = cam[..., 2]
        facing = np.einsum("ij,ij->i", self.q_normal, C - origin) > 0
        live = (z.max(1) > 0.05) & (z.min(1) < FAR) & (facing | self.q_two)
        # boxes of quads wholly in front of the near plane, all at once; the rest are clipped
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.cx + self.f * cam[..., 0] / z
            v = self.cy - self.f * cam[..., 1] / z
        box = np.stack(
            [np.floor(u.min(1)), np.floor(v.min(1)), np.ceil(u.max(1)) + 1, np.ceil(v.max(1)) + 1],
            1,
        )
        front = z.min(1) >= 0.05
        live &= ~front | ((box[:, 0] < w) & (box[:, 2] > 0) & (box[:, 1] < h) & (box[:, 3] > 0))
        gone = (z.max(1) < 0) & ~self.q_vel.any(1)  # static and behind: never seen again
        self.scene.release(self.q_tex[gone])
        zmin = z.min(1)
        M = R @ self.k_inv  # world ray of pixel (x + 0.5, y + 0.5) is M @ (x + 0.5, y + 0.5, 1)
        clamped = np.clip(box, 0, [w, h, w, h]).astype(np.int64)
        area = (clamped[:, 2] - clamped[:, 0]).clip(0) * (clamped[:, 3] - clamped[:, 1]).clip(0)
        small = live & front & (area <= SMALL_QUAD)
        idx = np.nonzero(live & ~small)[0]
        for i in idx[np.argsort(zmin[idx])]:  # nearest first: hidden pixels fail early
            if front[i]:
                x0, y0, x1, y1 = box[i]
                x0, y0, x1, y1 = max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)
            else:
                clipped = self._bbox(cam[i], w, h)
                if clipped is None:
                    continue
                x0, y0, x1, y1 = clipped
            win = (slice(y0, y1), slice(x0, x1))
            if zmin[i] >= g.depth[win].max():  # wholly behind what is already drawn there
                continue
            self._quad(g, i, origin[i], M, C, win)
        if small.any():  # far and thin things: many quads of few pixels, drawn in one pass
            self._small_quads(g, np.nonzero(small)[0], clamped, area, origin, M, C)

    def _small_quads(self, g, idx, box, area, origin, M, C) -> None:
        """:meth:`_quad` for many quads at once: one flat list of (quad, pixel) candidates.

        Per-quad numpy overhead would dominate for the hundreds of quads a few pixels large.
        """
        box, area = box[idx], area[idx]
        n = self.q_normal[idx]
        u, v = self.q_u[idx], self.q_v[idx]
        ax = u / (u * u).sum(1, keepdims=True)  # world -> fraction of the quad's width / height
        ay = v / (v * v).sum(1, keepdims=True)
        rel = C - origin[idx]
        ln, la, lb = (
            (n @ M).astype(np.float32),
            (ax @ M).astype(np.float32),
            (ay @ M).astype(np.float32),
        )
        kq = (-(n * rel).sum(1)).astype(np.float32)
        ka, kb = (rel * ax).sum(1).astype(np.float32), (rel * ay).sum(1).astype(np.float32)
        q = np.repeat(np.arange(len(idx)), area)
        k = np.arange(q.size) - np.repeat(np.cumsum(area) - area, area)
        bw = box[:, 2] - box[:, 0]
        yy = np.repeat(box[:, 1], area) + k // bw[q]
        xx = np.repeat(box[:, 0], area) + k % bw[q]
        px, py = self.px[0, xx], self.py[yy, 0]
        nd = ln[q, 0] * px + ln[q, 1] * py + ln[q, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = kq[q] / nd
        keep = (s > 0.05) & (s < g.depth[yy, xx])
        q, yy, xx, px, py, nd, s = (a[keep] for a in (q, yy, xx, px, py, nd, s))
        tu = ka[q] + s * (la[q, 0] * px + la[q, 1] * py + la[q, 2])
        tv = kb[q] + s * (lb[q, 0] * px + lb[q, 1] * py + lb[q, 2])
        keep = (tu >= 0) & (tu < 1) & (tv >= 0) & (tv < 1)
        q, yy, xx, nd, s, tu, tv = (a[keep] for a in (q, yy, xx, nd, s, tu, tv))
        cls = np.empty(q.size, np.uint8)
        tw = np.zeros(len(idx), np.float32)
        th = np.zeros(len(idx), np.float32)
        bounds = np.searchsorted(q, np.arange(len(idx) + 1))  # q is sorted
        for j in np.nonzero(np.diff(bounds))[0]:  # textures of quads with something in view
            a, b = bounds[j], bounds[j + 1]
            tex = self.scene.texture(self.q_tex[idx[j]])
            tw[j], th[j] = tex.width, tex.height
            tu[a:b] = np.minimum(tu[a:b] * tw[j], tw[j] - np.float32(1e-3))
            tv[a:b] = np.minimum(tv[a:b] * th[j], th[j] - np.float32(1e-3))
            cls[a:b] = tex.classes[tv[a:b].astype(np.int32), tu[a:b].astype(np.int32)]
        keep = cls != tx.CLEAR
        q, yy, xx, nd, s, tu, tv, cls = (a[keep] for a in (q, yy, xx, nd, s, tu, tv, cls))
        if not q.size:
            return
        pix = yy * g.depth.shape[1] + xx  # nearest candidate per pixel wins
        order = np.lexsort((s, pix))
        first = np.ones(order.size, bool)
        first[1:] = pix[order[1:]] != pix[order[:-1]]
        win = order[first]
        q, yy, xx, nd, s, tu, tv, cls = (a[win] for a in (q, yy, xx, nd, s, tu, tv, cls))
        tpm = np.maximum(tw / np.linalg.norm(u, axis=1), th / np.linalg.norm(v, axis=1))
        g.depth[yy, xx] = s
        g.hit[yy, xx] = idx[q]
        g.tex[yy, xx] = self.q_tex[idx[q]]
        g.tu[yy, xx], g.tv[yy, xx] = tu, tv
        g.lod[yy, xx] = self._lod(s, nd, self.ray_norm[yy, xx], tpm[q].astype(np.float32))
        g.labels[yy, xx] = cls

    def _bbox(self, pts: np.ndarray, w: int, h: int) -> tuple[int, int, int, int] | None:
        """Pixel bounding box of a quad's projection after clipping it at the near plane."""
        z0 = 0.05
        poly = []
        for a, b in zip(pts, np.roll(pts, -1, 0), strict=True):
            if a[2] >= z0:
                poly.append(a)
            if (a[2] >= z0) != (b[2] >= z0):
                poly.append(a + (b - a) * (z0 - a[2]) / (b[2] - a[2]))
        p = np.array(poly)
        u = self.cx + self.f * p[:, 0] / p[:, 2]
        v = self.cy - self.f * p[:, 1] / p[:, 2]
        x0, x1 = max(int(np.floor(u.min())), 0), min(int(np.ceil(u.max())) + 1, w)
        y0, y1 = max(int(np.floor(v.min())), 0), min(int(np.ceil(v.max())) + 1, h)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def _quad(self, g: GBuffer, i: int, org: np.ndarray, M: np.ndarray, C: np.ndarray, win) -> None:
        """Draw quad ``i`` into the pixels of window ``win`` where it is nearest.

        The world ray of pixel p = (x + 0.5, y + 0.5, 1) is ``d = M p``, so every quantity of the
        ray-plane hit is a linear form in p over another one: ``s = k / (n.M p)`` and the texture
        coordinates ``tu = (C - org).ax + s (ax.M p)``; no per-pixel 3-vectors are needed.
        """
        n = self.q_normal[i]
        u, v = self.q_u[i], self.q_v[i]
        ys, xs = win
        px = self.px[0, xs][None, :]
        py = self.py[ys, 0][:, None]
        ln = n @ M
        nd = np.float32(ln[0]) * px + (np.float32(ln[1]) * py + np.float32(ln[2]))
        k = float(n @ (org - C))
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.float32(k) / nd
        ok = (s > 0.05) & (s < g.depth[win])
        rows, cols = np.nonzero(ok)
        if not rows.size:
            return
        s, nd = s[rows, cols], nd[rows, cols]
        yy, xx = rows + ys.start, cols + xs.start
        pxs, pys = self.px[0, xx], self.py[yy, 0]
        ax, ay = u / (u @ u), v / (v @ v)  # world -> fraction of the quad's width / height
        la, lb = ax @ M, ay @ M
        tu = np.float32((C - org) @ ax) + s * (
            np.float32(la[0]) * pxs + np.float32(la[1]) * pys + np.float32(la[2])
        )
        tv = np.float32((C - org) @ ay) + s * (
            np.float32(lb[0]) * pxs + np.float32(lb[1]) * pys + np.float32(lb[2])
        )
        inside = (tu >= 0) & (tu < 1) & (tv >= 0) & (tv < 1)
        if not inside.all():
            yy, xx, s, nd, tu, tv = (a[inside] for a in (yy, xx, s, nd, tu, tv))
        if not yy.size:
            return
        tex = self.scene.texture(self.q_tex[i])  # made only once something of it is in view
        tu = np.minimum(tu * np.float32(tex.width), np.float32(tex.width - 1e-3))
        tv = np.minimum(tv * np.float32(tex.height), np.float32(tex.height - 1e-3))
        cls = tex.classes[tv.astype(np.int32), tu.astype(np.int32)]
        solid = cls != tx.CLEAR
        if not solid.all():
            yy, xx, s, nd, tu, tv, cls = (a[solid] for a in (yy, xx, s, nd, tu, tv, cls))
        if not yy.size:
            return
        tpm = max(tex.width / np.sqrt(u @ u), tex.height / np.sqrt(v @ v))
        g.depth[yy, xx] = s
        g.hit[yy, xx] = i
        g.tex[yy, xx] = self.q_tex[i]
        g.tu[yy, xx], g.tv[yy, xx] = tu, tv
        g.lod[yy, xx] = self._lod(s, nd, self.ray_norm[yy, xx], tpm)
        g.labels[yy, xx] = cls

    def _sky(self, g: GBuffer, rays: np.ndarray) -> None:
        m = g.hit == SKY
        d = rays[m]
        tex = self.scene.texture(self.scene.sky)
        az = np.arctan2(d[:, 0], d[:, 2])
        el = np.arctan2(d[:, 1], np.hypot(d[:, 0], d[:, 2]))
        g.tu[m] = np.mod((az / (2 * np.pi) + 0.5) * tex.width, tex.width)
        g.tv[m] = np.clip((1.2 - el) / 1.3 * tex.height, 0, tex.height - 1e-3)
        g.lod[m] = 0.0

    # -- motion -----------------------------------------------------------------------------------

    def flow(self, index: int, g: GBuffer, rays: np.ndarray, C: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32 backward flow of frame ``index`` (zeros for frame 0)."""
        h, w = g.depth.shape
        if index == 0:
            return np.zeros((h, w, 2), np.float32)
        Cp, Rp = self.scene.camera.pose(self.time(index - 1))
        sky = g.hit == SKY
        depth = np.where(sky, 0.0, g.depth)[..., None]
        # points at their previous position, relative to the previous camera
        P = (C - Cp).astype(np.float32) + depth * rays
        moving = g.hit >= 0
        if moving.any():
            P[moving] -= (self.q_vel[g.hit[moving]] / self.fps).astype(np.float32)
        P[sky] = rays[sky]  # directions at infinity only rotate
        X = P @ Rp.astype(np.float32)
        z = np.maximum(X[..., 2], 1e-6)
        qx = self.cx + self.f * X[..., 0] / z
        qy = self.cy - self.f * X[..., 1] / z
        return np.stack([qx - self.px, qy - self.py], -1).astype(np.float32)

    # -- colour -----------------------------------------------------------------------------------

    def shade(self, index: int, g: GBuffer, rays: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the frame."""
        h, w = g.depth.shape
        col = np.empty((h * w, 3), np.float32)
        tex_ids = g.tex.ravel()
        order = np.argsort(tex_ids, kind="stable")
        counts = np.bincount(tex_ids, minlength=len(self.scene.slots))
        tu, tv, lod = g.tu.ravel(), g.tv.ravel(), g.lod.ravel()
        start = 0
        for k in np.nonzero(counts)[0]:
            idx = order[start : start + counts[k]]
            start += counts[k]
            col[idx] = sample(self.scene.texture(k), tu[idx], tv[idx], lod[idx])
        col = col.reshape(h, w, 3)
        shade = np.ones((h, w), np.float32)
        q = g.hit >= 0
        shade[q] = self.q_shade[g.hit[q]]
        col *= shade[..., None]
        sky = g.hit == SKY
        dist = np.where(sky, 0.0, g.depth * self.ray_norm)
        full = 1 - np.exp(-FAR / FOG_SCALE)
        fog = np.clip((1 - np.exp(-dist / FOG_SCALE)) / full, 0, 1)[..., None]
        col = col * (1 - fog) + self.scene.fog_color * fog
        t = self.time(index)
        ph = self.scene.light_phase
        gain = 1.0 + 0.07 * np.sin(2 * np.pi * t / 6.5 + ph)
        tint = np.array([1.0 + 0.02 * np.sin(2 * np.pi * t / 9.0 + ph), 1.0, 1.0], np.float32)
        col *= gain * tint
        col = cv2.GaussianBlur(col, (3, 3), BLUR_SIGMA)  # lens softness; no jagged silhouettes
        # sensor noise: the sum of random crops of two fixed fields, new every frame (no pattern
        # that moves coherently from frame to frame, which the codec could lock on to)
        rng = np.random.default_rng((self.seed, index))
        (y0, x0, y1, x1) = (int(v) for v in rng.integers(0, NOISE_PAD + 1, 4))
        col += self.noise[0][y0 : y0 + h, x0 : x0 + w]
        col += self.noise[1][y1 : y1 + h, x1 : x1 + w]
        return np.clip(col + 0.5, 0, 255).astype(np.uint8)


def sample(tex: tx.Texture, tu: np.ndarray, tv: np.ndarray, lod: np.ndarray) -> np.ndarray:
    """Trilinear (mip-mapped bilinear) lookup at texture coordinates; (n, 3) float32."""
    top = len(tex.levels) - 1
    lod = np.clip(lod, 0.0, float(top))
    l0 = lod.astype(np.int32)
    frac = lod - l0
    border = cv2.BORDER_WRAP if tex.wrap else cv2.BORDER_REPLICATE
    h0, w0 = tex.height, tex.width
    lo, hi = int(l0.min()), int(l0.max())
    if lo == hi:
        a = _at(tex.levels[lo], tu, tv, h0, w0, border)
        if lo < top:
            a += (_at(tex.levels[lo + 1], tu, tv, h0, w0, border) - a) * frac[:, None]
        return a
    out = np.empty((tu.size, 3), np.float32)
    for lv in range(lo, hi + 1):
        m = np.nonzero(l0 == lv)[0]
        if not m.size:
            continue
        a = _at(tex.levels[lv], tu[m], tv[m], h0, w0, border)
        if lv < top:
            a += (_at(tex.levels[lv + 1], tu[m], tv[m], h0, w0, border) - a) * frac[m, None]
        out[m] = a
    return out


def _at(
    img: np.ndarray, tu: np.ndarray, tv: np.ndarray, h0: int, w0: int, border: int
) -> np.ndarray:
    """Bilinear samples of one level: cv2.remap over the point list laid out in rows of 1024."""
    n = tu.size
    rows = -(-n // 1024)
    mx = np.empty(rows * 1024, np.float32)
    my = np.empty(rows * 1024, np.float32)
    np.multiply(tu, img.shape[1] / w0, out=mx[:n], casting="unsafe")
    np.multiply(tv, img.shape[0] / h0, out=my[:n], casting="unsafe")
    mx[:n] -= 0.5
    my[:n] -= 0.5
    mx[n:] = 0
    my[n:] = 0
    out = cv2.remap(img, mx.reshape(rows, 1024), my.reshape(rows, 1024), cv2.INTER_LINEAR,
                    borderMode=border)  # fmt: skip
    return out.reshape(-1, 3)[:n].astype(np.float32)
