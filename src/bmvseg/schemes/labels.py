"""Full-size arg-max labels from low-resolution logits without the full-size upsample.

The reference is ``F.interpolate(logits, (H, W), mode="bilinear", align_corners=False)``
followed by an arg-max over classes.  Each full-size pixel's upsampled scores are a convex
combination of its (up to) four low-resolution neighbours' scores, so where those four share
one arg-max class, that class wins: exactly, because float rounding of a convex combination is
monotone in each input (a strict win can at worst become an exact tie).  Full-resolution work
is therefore needed only in the *cells* (2x2 neighbourhoods of low-res pixels) whose corners
disagree (11-19% of the cells for the shipped model on CamVid street frames at stride 4, see
``bench/kernel_costs.py``); everywhere else the low-res labels are expanded with the upsample's own
pixel-to-source mapping.  Inside a disagreeing cell only the classes that can win there are
scored (a class whose largest corner is below every pixel's guaranteed best cannot).

Exactness in the disagreeing cells: the bilinear scores there are computed in float32 with the
same source indices and weights as PyTorch's kernel (``src = max(scale * (X + 0.5) - 0.5, 0)``
with ``scale = in / out``, both taps clamped to the last pixel; ``tests/test_labels.py`` checks
them against the kernel).  Rounding may still differ from the kernel's by a few ulps, so the
pixels whose two best classes are that close (about one per frame on a real network's float
scores) are decided with the kernel's own rounding, by the first of these that reproduces it
bit for bit on random scores of the same shape and layout (tried once per shape): its fused
multiply-adds emulated (channels-first maps, 480-960 px wide outputs), the kernel run on 2x2
crops (channels-last maps, power-of-two scales), or one dense upsample.  So the labels equal
the dense path's except at exact ties inside uniform cells, where the tie-breaking of a
rounded score could differ (none in our tests).

Bounded worst case: the sparse work grows with the share of disagreeing cells, the dense
upsample + arg-max does not.  Each frame's share is measured first (one cheap pass over the
low-res labels); above :data:`DENSE_ABOVE` the frame takes the dense path itself, so a frame of
uncertain logits (many classes, an untrained or confused network) never costs much more than
the dense path would.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

_CHUNK = 1 << 16  # full-resolution pixels recomputed per batch (bounds memory)
# Share of disagreeing cells above which the dense upsample + arg-max is taken: the sparse
# path's cost crossed the dense one's at 55-70% of the cells for 11 classes and 60-100% for
# 19 at 960x540, stride 4, and stayed within 1.2x of it above (``bench/kernel_costs.py
# --only labels``; ``bench/RESULTS-throughput.md``).  Trained networks on street frames sit
# at 10-20%.
DENSE_ABOVE = 0.6


def _fma(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a * b + c`` rounded as a float32 fused multiply-add (the kernel's source coordinate).

    The product is exact in float64; the sum is rounded to float64 then float32, which differs
    from a single rounding only in rare double-rounding cases.
    """
    return torch.addcmul(c.double(), a.double(), b.double()).float()


@dataclass(frozen=True)
class _Tiles:
    """One axis of the upsample, cut into tiles of at most ``size`` output pixels that share
    their two source taps: tile ``t`` covers output pixels ``pos[:, t]`` (where
    ``valid[:, t]``), interpolating between sources ``src[t]`` and ``src1[t]`` with weights
    ``w0[:, t], w1[:, t]``.  Tiles are the last axis so that gathers stay contiguous.
    """

    src: torch.Tensor  # (T,) first source index
    src1: torch.Tensor  # (T,) second source index (clamped to the last)
    pos: torch.Tensor  # (size, T) output pixel index (clamped where not valid)
    valid: torch.Tensor  # (size, T) bool
    w0: torch.Tensor  # (size, T) weight of src
    w1: torch.Tensor  # (size, T) weight of src1
    first: torch.Tensor  # (n_out,) first source index of every output pixel
    second: torch.Tensor  # (n_out,) second source index of every output pixel
    first_w: torch.Tensor  # (n_out,) their weights
    second_w: torch.Tensor  # (n_out,)


@lru_cache(maxsize=32)
def _tiles(n_in: int, n_out: int, device: torch.device) -> _Tiles:
    """The kernel's pixel-to-source mapping of one axis, as tiles (see :class:`_Tiles`)."""
    scale = torch.tensor(float(n_in), dtype=torch.float32) / n_out
    dst = torch.arange(n_out, dtype=torch.float32) + 0.5
    src = _fma(scale.expand(n_out), dst, torch.full((n_out,), -0.5)).clamp_min(0)
    i0 = src.floor().long().clamp_max(n_in - 1)
    lam = (src - i0).clamp(0, 1)
    i1 = torch.where(i0 < n_in - 1, i0 + 1, i0)
    counts = torch.bincount(i0, minlength=n_in)  # i0 is sorted: source i owns a run of pixels
    inner = counts[1:-1] if n_in > 2 else counts
    size = max(1, int(inner.max()))  # the clamped border runs are longer: they get 2+ tiles
    per_src = -(-counts // size)
    tile_src = torch.repeat_interleave(torch.arange(n_in), per_src)
    first_tile = torch.cumsum(per_src, 0) - per_src
    run_start = torch.cumsum(counts, 0) - counts
    k = torch.arange(tile_src.numel()) - first_tile[tile_src]  # tile number within its run
    start = run_start[tile_src] + k * size
    length = torch.minimum(counts[tile_src] - k * size, torch.tensor(size))
    offs = torch.arange(size)
    pos = (start[None, :] + offs[:, None]).clamp_max(n_out - 1)
    tiles = _Tiles(tile_src, i1[pos[0]], pos, offs[:, None] < length, 1 - lam[pos], lam[pos],
                   i0, i1, 1 - lam, lam)  # fmt: skip
    return _Tiles(*(t.to(device) for t in vars(tiles).values()))


def disagreeing_cells(low: torch.Tensor) -> torch.Tensor:
    """``(h, w)`` bool: cell ``(i, j)`` (corners ``i..i+1, j..j+1``, clamped) is not uniform."""
    right = torch.cat([low[:, 1:], low[:, -1:]], 1)
    down = torch.cat([low[1:], low[-1:]], 0)
    diag = torch.cat([right[1:], right[-1:]], 0)
    return (low != right) | (low != down) | (low != diag)


def labels_from_lowres_logits(
    logits: torch.Tensor,
    out_hw: tuple[int, int],
    void_index: int | None = None,
    dense_above: float = DENSE_ABOVE,
) -> np.ndarray:
    """Arg-max of the bilinear (align_corners=False) upsample of ``logits`` to ``out_hw``.

    ``logits``: ``(1, K, h, w)`` float scores.  Returns an ``(H, W)`` uint8 label map equal to
    ``F.interpolate(logits, out_hw, mode="bilinear", align_corners=False)[0].argmax(0)``
    except at exact ties (see the module docstring).  ``void_index`` names an output that is
    not a class: it is dropped before the arg-max and the ids above it move down by one (as
    :meth:`~bmvseg.models.base.SegmentationModel.map_outputs` does).  The engine's other path,
    for models that upsample inside their task network, is
    :func:`~bmvseg.schemes.engine.argmax_labels`.  A frame whose share of disagreeing cells
    is above ``dense_above`` takes the dense path (1.0: never; see the module docstring).
    """
    labels, _ = labels_and_share(logits, out_hw, void_index, dense_above)
    return labels


def labels_and_share(
    logits: torch.Tensor,
    out_hw: tuple[int, int],
    void_index: int | None = None,
    dense_above: float = DENSE_ABOVE,
) -> tuple[np.ndarray, float]:
    """:func:`labels_from_lowres_logits` and the share of disagreeing cells (the frame took
    the dense path when it is above ``dense_above``)."""
    if logits.ndim != 4 or logits.shape[0] != 1:
        raise ValueError(f"logits must be (1, K, h, w), got {tuple(logits.shape)}")
    if void_index is not None:
        keep = [i for i in range(logits.shape[1]) if i != void_index]
        logits = logits[:, keep]
    if logits.shape[1] > 256:
        raise ValueError(f"{logits.shape[1]} classes do not fit uint8 labels")
    H, W = out_hw
    _, k, h, w = logits.shape
    low = logits[0].argmax(0)
    if (h, w) == (H, W):
        return low.to(torch.uint8).cpu().numpy(), 0.0
    cells = disagreeing_cells(low)
    share = float(cells.float().mean())
    if share > dense_above:
        return _dense_labels(logits, out_hw), share
    ty_all, tx_all = _tiles(h, H, logits.device), _tiles(w, W, logits.device)
    # Every pixel takes its first source's low-res label (row gathers are plain copies).
    full = low.to(torch.uint8).index_select(1, tx_all.first).index_select(0, ty_all.first)
    out = torch.cat([full.flatten(), full.new_zeros(1)])  # + a spare slot, see _fill
    ty, tx = cells[ty_all.src][:, tx_all.src].nonzero(as_tuple=True)  # disagreeing tiles
    if ty.numel():
        lo, hi = (float(t) for t in logits.aminmax())
        # A float32 result differs from the kernel's by a few ulps of the largest score, so
        # only pixels whose two best classes are closer than that are recomputed exactly.
        # (-inf scores, classes never predicted, are left out of that scale.)
        big = max(abs(hi), abs(lo)) if lo > float("-inf") else _finite_max_abs(logits)
        tol = 16 * torch.finfo(torch.float32).eps * big
        taps = _Taps(logits[0], clamp=lo == float("-inf"))
        step = max(1, _CHUNK // (ty_all.pos.shape[0] * tx_all.pos.shape[0]))
        near = [
            _fill(out, W, taps, w, ty_all, tx_all, ty[s : s + step], tx[s : s + step], tol)
            for s in range(0, ty.numel(), step)
        ]
        near_at = torch.cat(near)
        near_at = near_at[near_at < H * W]
        if near_at.numel():  # near-ties: decided with the kernel's own rounding
            ys, xs = near_at // W, near_at % W
            out[near_at] = _kernel_argmax(logits, (H, W), taps, ty_all, tx_all, ys, xs)
    return out[:-1].view(H, W).cpu().numpy(), share


def _dense_labels(logits: torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
    """The reference itself: the full-size upsample, then the arg-max (first index on ties).
    A -inf score (a class never predicted) becomes the lowest float first: -inf times a zero
    weight is nan, which the arg-max would pick."""
    if bool(torch.isneginf(logits).any()):
        logits = logits.clamp_min(torch.finfo(logits.dtype).min)
    up = F.interpolate(logits, out_hw, mode="bilinear", align_corners=False)
    return up[0].argmax(0).to(torch.uint8).cpu().numpy()


def _finite_max_abs(logits: torch.Tensor) -> float:
    finite = torch.isfinite(logits)
    return float(torch.where(finite, logits.abs(), 0).amax())


class _Taps:
    """Gathers of the scores of all classes at given low-res pixels, ``(K, n)`` float32.

    Works on the map's own layout: a channels-last map is gathered by pixel rows (a view, no
    transposing copy of the whole map), a channels-first one by class rows.
    """

    def __init__(self, scores: torch.Tensor, clamp: bool) -> None:
        k = scores.shape[0]
        self.k, self.clamp = k, clamp
        by_pixel = scores.permute(1, 2, 0).reshape(-1, k)  # a view when channels-last
        if by_pixel.is_contiguous():
            self.by_pixel, self.by_class = by_pixel, None
        else:
            self.by_pixel, self.by_class = None, scores.reshape(k, -1).contiguous()

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        if self.by_class is not None:
            q = self.by_class.index_select(1, index)
        else:
            q = self.by_pixel.index_select(0, index).t().contiguous()
        q = q.float()
        if self.clamp:  # -inf * 0 = nan in the interpolation: the lowest float still loses
            q = q.clamp_min(torch.finfo(torch.float32).min)
        return q


def _fill(
    out, out_w: int, taps: _Taps, w, rows: _Tiles, cols: _Tiles, ty, tx, tol: float
) -> torch.Tensor:
    """Write the arg-max of the bilinear scores of tiles ``(ty[n], tx[n])`` into ``out``
    (the flat ``H * W + 1`` label buffer, rows ``out_w`` wide).  Returns the flat positions
    whose two best classes are within ``tol``: float32 rounding may decide those differently
    from the upsample kernel.

    The tile axis ``n`` is kept innermost so that every elementwise step is a long contiguous
    vector operation (broadcasting over short trailing axes is several times slower).
    """
    k = taps.k
    r0, r1 = rows.src[ty] * w, rows.src1[ty] * w
    c0, c1 = cols.src[tx], cols.src1[tx]
    idx = torch.stack([r0 + c0, r0 + c1, r1 + c0, r1 + c1])
    q = taps(idx.flatten()).reshape(k, 4, -1)  # (K, 4, n)
    # Only a few classes can win inside a tile: each pixel's best score is at least
    # ``floor`` (some class's smallest corner), and a class scores at most its largest
    # corner.  The others are dropped; the kept ones stay in class order (ties: first wins).
    floor = q.amin(1).amax(0)
    can_win = q.amax(1) >= floor - tol  # (K, n)
    m = int(can_win.sum(0).max())
    cls = None
    if m < k:
        key = torch.where(can_win, 0, k) + torch.arange(k, device=q.device)[:, None]
        cls = key.argsort(0)[:m]  # (m, n) the candidates first, in class order
        q = q.gather(0, cls[:, None, :].expand(-1, 4, -1))
        k = m
    q = q.view(k, 4, 1, 1, -1)  # (k, 4, 1, 1, n)
    wx0, wx1 = cols.w0[:, tx][None], cols.w1[:, tx][None]  # (1, C, n)
    wy0, wy1 = rows.w0[:, ty][:, None], rows.w1[:, ty][:, None]  # (R, 1, n)
    t0 = q[:, 0] * wx0 + q[:, 1] * wx1  # (K, 1, C, n): along x first, as the kernel
    t1 = q[:, 2] * wx0 + q[:, 3] * wx1
    v = (t0 * wy0 + t1 * wy1).view(k, -1)  # (K, R * C * n)
    best, gap = _top2(v)
    near = gap <= tol
    if cls is not None:  # candidate rank -> class id (pixels are ordered (R, C, n))
        n = ty.numel()
        best = cls.flatten()[best * n + torch.arange(best.numel(), device=best.device) % n]
    # Flat output offsets; pixels past a tile's end go to a spare slot at the end of ``out``.
    spare = out.numel() - 1
    row_off = torch.where(rows.valid[:, ty], rows.pos[:, ty] * out_w, spare)  # (R, n)
    col_off = torch.where(cols.valid[:, tx], cols.pos[:, tx], spare)  # (C, n)
    where = (row_off[:, None, :] + col_off[None, :, :]).clamp_max_(spare).flatten()
    out[where] = best.to(torch.uint8)
    return where[near]  # may include the spare slot


def _kernel_scores(taps: _Taps, w: int, rows: _Tiles, cols: _Tiles, ys, xs) -> torch.Tensor:
    """``(K, n)`` bilinear scores at pixels ``(ys, xs)`` rounded as the CPU kernel rounds them:
    along x first, ``t = fma(a, wx0, b * wx1)`` for both rows, then ``fma(t0, wy0, t1 * wy1)``.
    """
    y0, y1, x0, x1 = rows.first[ys] * w, rows.second[ys] * w, cols.first[xs], cols.second[xs]
    q = taps(torch.stack([y0 + x0, y0 + x1, y1 + x0, y1 + x1]).flatten())
    a, b, c, d = q.reshape(taps.k, 4, -1).unbind(1)
    wx0, wx1, wy0, wy1 = cols.first_w[xs], cols.second_w[xs], rows.first_w[ys], rows.second_w[ys]
    return _fma(_fma(a, wx0, b * wx1), wy0, _fma(c, wx0, d * wx1) * wy1)


def _crop_scores(logits: torch.Tensor, out_hw: tuple[int, int], ys, xs) -> torch.Tensor:
    """``(K, n)`` scores at ``(ys, xs)`` from the kernel itself, run on 2x2 crops.

    Valid when both scales are exact powers of two (``H = s * h``): then a crop that starts
    at low-res pixel ``c`` maps its output pixel ``Y - s * c`` to the same fractional source
    position (all of it exact in float), and a channels-last kernel computes every pixel by
    the same code whatever the map's size.
    """
    _, k, h, w = logits.shape
    sy, sx = out_hw[0] // h, out_hw[1] // w
    r0 = torch.clamp(torch.div(ys * 2 + 1 - sy, 2 * sy, rounding_mode="floor"), 0, max(h - 2, 0))
    c0 = torch.clamp(torch.div(xs * 2 + 1 - sx, 2 * sx, rounding_mode="floor"), 0, max(w - 2, 0))
    ch, cw = min(h, 2), min(w, 2)
    # Pixels that share a crop share one upsample of it (the check in _near_method asks for
    # whole rows: about 2 * sx pixels per crop).
    starts, which = torch.unique(r0 * w + c0, return_inverse=True)
    rr = (starts // w)[:, None] + torch.arange(ch, device=ys.device)  # (u, ch)
    cc = (starts % w)[:, None] + torch.arange(cw, device=ys.device)  # (u, cw)
    crops = logits[0][:, rr[:, :, None], cc[:, None, :]].permute(1, 0, 2, 3)  # (u, K, ch, cw)
    crops = crops.contiguous(memory_format=torch.channels_last)
    up = F.interpolate(crops, (ch * sy, cw * sx), mode="bilinear", align_corners=False)
    return up[which, :, ys - sy * r0, xs - sx * c0].t()


def _kernel_argmax(logits, out_hw, taps: _Taps, rows: _Tiles, cols: _Tiles, ys, xs):
    """Labels at ``(ys, xs)`` exactly as the dense kernel gives them (first index on ties)."""
    method = _near_method(tuple(logits.shape), _is_channels_last(logits), logits.dtype,
                          logits.device, out_hw)  # fmt: skip
    if method == "emulate":
        scores = _kernel_scores(taps, logits.shape[-1], rows, cols, ys, xs)
    elif method == "crop":
        scores = _crop_scores(logits, out_hw, ys, xs)
    else:  # a kernel we do not reproduce: ask it for the whole frame
        up = F.interpolate(logits, out_hw, mode="bilinear", align_corners=False)[0]
        scores = up[:, ys, xs]
    return scores.argmax(0).to(torch.uint8)


def _is_channels_last(logits: torch.Tensor) -> bool:
    return logits.shape[1] > 1 and logits.is_contiguous(memory_format=torch.channels_last)


@lru_cache(maxsize=16)
def _near_method(shape, channels_last: bool, dtype, device, out_hw) -> str:
    """How to reproduce the kernel's rounding for maps like these, tried once on random scores:
    "emulate" (:func:`_kernel_scores`), "crop" (:func:`_crop_scores`) or "dense"."""
    if dtype != torch.float32:
        return "dense"
    _, k, h, w = shape
    H, W = out_hw
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(shape, generator=g).to(device)
    if channels_last:
        probe = probe.contiguous(memory_format=torch.channels_last)
    ref = F.interpolate(probe, out_hw, mode="bilinear", align_corners=False)[0]
    # Every column, on the border rows and a spread of inner ones (the code path may vary
    # along a row: vectorised body, scalar tail).
    edge = torch.cat([torch.arange(min(H, 4)), torch.arange(max(0, H - 4), H)])
    some = torch.unique(torch.cat([edge, torch.linspace(0, H - 1, 16).long()])).to(device)
    ys = some.repeat_interleave(W)
    xs = torch.arange(W, device=device).repeat(some.numel())
    want = ref[:, ys, xs]
    rows, cols = _tiles(h, H, probe.device), _tiles(w, W, probe.device)
    if torch.equal(_kernel_scores(_Taps(probe[0], clamp=False), w, rows, cols, ys, xs), want):
        return "emulate"
    powers = all(n == s * m and s & (s - 1) == 0 for n, m, s in [(H, h, H // h), (W, w, W // w)])
    if channels_last and powers and torch.equal(_crop_scores(probe, out_hw, ys, xs), want):
        return "crop"
    return "dense"


def _top2(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Arg-max over the first axis (first index on ties) and the gap to the runner-up.

    Built from ``amax`` over the class axis, which is fast where ``argmax`` / ``max`` over a
    non-innermost axis are several times slower on the CPU.
    """
    k = v.shape[0]
    best = v.amax(0)
    rank = torch.arange(k, 0, -1, dtype=torch.int16, device=v.device)[:, None]  # first wins
    arg = k - ((v == best) * rank).amax(0).long()
    runner_up = v.scatter(0, arg[None], float("-inf")).amax(0)  # an exact tie gives gap 0
    return arg, best - runner_up
