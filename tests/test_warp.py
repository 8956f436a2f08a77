"""The warp convention (pull offsets, x first, pixel centres) pinned by invariants."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bmvseg.schemes.fusion import ConvFusion, fuse, interval_weights
from bmvseg.schemes.propagation import propagate
from bmvseg.video.motion import MotionField
from bmvseg.warp import (
    PreparedFlow,
    backward_flow,
    compose,
    field_to_flow,
    field_to_flows,
    sampler,
    warp,
    warp_pair,
    warp_with,
)


def smooth_map(c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """A smooth random feature map, so bilinear sampling is well-behaved."""
    g = torch.Generator().manual_seed(seed)
    small = torch.randn(1, c, h // 4 + 2, w // 4 + 2, generator=g)
    return torch.nn.functional.interpolate(small, size=(h, w), mode="bicubic", align_corners=False)


def const_flow(dx: float, dy: float, h: int, w: int) -> torch.Tensor:
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def grid_sample_warp(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """The reference: ``grid_sample`` on the normalised grid of the convention."""
    n, _, h, w = features.shape
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * (2.0 / h) - 1.0
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * (2.0 / w) - 1.0
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    grid = base + flow.permute(0, 2, 3, 1) * torch.tensor([2.0 / w, 2.0 / h])
    return torch.nn.functional.grid_sample(
        features, grid.expand(n, -1, -1, -1), "bilinear", "border", align_corners=False
    )


@given(
    n=st.sampled_from([1, 2]),
    c=st.sampled_from([1, 2, 5, 64]),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    amp=st.sampled_from([0.3, 2.0, 30.0]),
    channels_last=st.booleans(),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None)
def test_equals_grid_sample(
    n: int, c: int, h: int, w: int, amp: float, channels_last: bool, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, c, h, w, generator=g)
    if channels_last:
        f = f.contiguous(memory_format=torch.channels_last)
    flow = torch.randn(n, 2, h, w, generator=g) * amp  # amp 30: far outside, border clamping
    out = warp(f, flow)
    assert out.shape == f.shape and out.is_contiguous(memory_format=torch.channels_last)
    # grid_sample's normalised grid rounds coordinates by ~size * 2**-24 pixels.
    assert torch.allclose(out, grid_sample_warp(f, flow), atol=2e-4 * max(h, w) / 40 + 1e-5)
    one = flow[:1]  # one flow for a batch of maps
    assert torch.allclose(warp(f, one), grid_sample_warp(f, one), atol=2e-4 * max(h, w) / 40 + 1e-5)


def test_sampler_reused_and_pair() -> None:
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(1, 8, 12, 17, generator=g), torch.randn(1, 3, 12, 17, generator=g)
    fa, fb = torch.randn(1, 2, 12, 17, generator=g), torch.randn(1, 2, 12, 17, generator=g)
    s = sampler(fa)
    assert torch.equal(warp_with(a, s), warp(a, fa))
    assert torch.allclose(warp_with(b, s)[:, :1], warp(b[:, :1], fa), atol=1e-6)  # any map
    pa, pb = warp_pair(a, fa, b, fb)
    assert torch.equal(pa, warp(a, fa)) and torch.equal(pb, warp(b, fb))


def test_pull_direction_and_axis_order() -> None:
    f = torch.zeros(1, 1, 8, 10)
    f[0, 0, 3, 4] = 1.0  # a spike at x=4, y=3
    out = warp(f, const_flow(2, 1, 8, 10))  # out(p) = f(p + (2, 1))
    assert out[0, 0, 2, 2] == 1.0 and torch.isclose(out.sum(), torch.tensor(1.0))


@given(
    c=st.integers(1, 4),
    h=st.integers(2, 24),
    w=st.integers(2, 24),
)
@settings(max_examples=30, deadline=None)
def test_zero_flow_is_identity(c: int, h: int, w: int) -> None:
    f = torch.randn(1, c, h, w)
    assert torch.equal(warp(f, torch.zeros(1, 2, h, w)), f)
    # A flow with sub-ulp noise is still the identity to float precision (true sampling path).
    tiny = torch.full((1, 2, h, w), 1e-7)
    assert torch.allclose(warp(f, tiny), f, atol=1e-4)


@given(
    a=st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
    b=st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
)
@settings(max_examples=25, deadline=None)
def test_two_translations_compose_to_one(a: tuple[int, int], b: tuple[int, int]) -> None:
    h, w, m = 32, 40, 7  # compare away from borders (m > total shift)
    f = smooth_map(3, h, w)
    twice = warp(warp(f, const_flow(*a, h, w)), const_flow(*b, h, w))
    once = warp(f, const_flow(a[0] + b[0], a[1] + b[1], h, w))
    assert torch.allclose(twice[..., m:-m, m:-m], once[..., m:-m, m:-m], atol=1e-5)
    composed = compose(const_flow(*a, h, w), const_flow(*b, h, w))
    assert torch.allclose(composed, const_flow(a[0] + b[0], a[1] + b[1], h, w))


def test_field_to_flow_scales_blocks_to_feature_stride() -> None:
    # 48x64 image, 16-px blocks (3x4 cells); features at stride 8 (6x8).
    mv = np.zeros((3, 4, 2), np.float32)
    mv[1, 2] = (8.0, -4.0)
    field = MotionField(mv, np.ones((3, 4), bool), 16)
    flow = field_to_flow(field, (6, 8), 8)
    assert flow.shape == (1, 2, 6, 8)
    # Cell (1, 2) covers feature pixels rows 2-3, cols 4-5; vectors divided by the stride.
    assert torch.all(flow[0, 0, 2:4, 4:6] == 1.0) and torch.all(flow[0, 1, 2:4, 4:6] == -0.5)
    assert flow[0, :, :2].abs().sum() == 0 and flow[0, :, :, :4].abs().sum() == 0


def test_invalid_cells_take_neighbour_mean() -> None:
    mv = np.full((3, 3, 2), 2.0, np.float32)
    valid = np.ones((3, 3), bool)
    valid[1, 1] = False
    mv[1, 1] = 99.0  # must not be trusted
    flow = field_to_flow(MotionField(mv, valid, 16), (3, 3), 16)
    assert torch.allclose(flow, torch.full_like(flow, 2.0 / 16))
    none_valid = field_to_flow(MotionField(mv, np.zeros((3, 3), bool), 16), (3, 3), 16)
    assert not none_valid.any()


def test_backward_undoes_forward_for_translation() -> None:
    h, w, m = 24, 32, 4
    f = smooth_map(2, h, w, seed=1)
    fwd = const_flow(2, -1, h, w)
    back = warp(warp(f, fwd), backward_flow(fwd))
    assert torch.allclose(back[..., m:-m, m:-m], f[..., m:-m, m:-m], atol=1e-5)
    # Sub-pixel: exact up to the blur of two bilinear resamplings.
    fwd = const_flow(1.5, -0.5, h, w)
    back = warp(warp(f, fwd), backward_flow(fwd))
    err = (back - f)[..., m:-m, m:-m].abs().mean()
    not_undone = (warp(f, fwd) - f)[..., m:-m, m:-m].abs().mean()
    assert err < 0.3 * not_undone


def test_accumulated_propagation_matches_chained_for_translation() -> None:
    h, w, m = 24, 32, 8
    f = smooth_map(2, h, w, seed=2)
    steps = [(const_flow(1, 0, h, w),), (const_flow(0.5, 1, h, w),), (const_flow(1, 0.5, h, w),)]
    chained = propagate((f,), steps)
    accumulated = propagate((f,), steps, accumulate=True)
    for x, y in zip(chained, accumulated, strict=True):
        assert torch.allclose(x[0][..., m:-m, m:-m], y[0][..., m:-m, m:-m], atol=0.02)


def test_fusion_weights_follow_the_paper() -> None:
    assert interval_weights(0, 5) == (1.0, 0.0)
    assert interval_weights(2, 5) == (0.6, 0.4)
    ff, fb = torch.ones(1, 2, 3, 3), torch.full((1, 2, 3, 3), 3.0)
    (avg,) = fuse((ff,), (fb,), 1, 4, "avg")
    assert torch.allclose(avg, torch.full_like(avg, 0.75 * 1 + 0.25 * 3))
    (mx,) = fuse((ff,), (fb,), 1, 4, "max")
    assert torch.allclose(mx, torch.full_like(mx, 0.75))
    (cv,) = fuse((ff,), (fb,), 1, 4, "conv", ConvFusion([2]))  # initialised to avg
    assert torch.allclose(cv, avg)


def test_a_prepared_flow_builds_its_sampler_once_and_warps_as_warp_does() -> None:
    flow = const_flow(1.3, -0.6, 16, 20)
    prepared = PreparedFlow(flow)
    maps = [smooth_map(4, 16, 20, seed=s) for s in (1, 2)]
    outs = [prepared.warp(m) for m in maps]
    built = prepared._sampler
    assert prepared.warp(maps[0]) is not None and prepared._sampler is built  # reused
    for m, out in zip(maps, outs, strict=True):
        assert torch.equal(out, warp(m, flow))
    still = PreparedFlow(torch.zeros(1, 2, 16, 20))
    assert still.warp(maps[0]) is maps[0] and still._sampler is None  # static: no sampler at all


def test_field_to_flows_fills_once_and_equals_one_grid_at_a_time() -> None:
    rng = np.random.default_rng(0)
    mv = rng.normal(0, 3, (4, 5, 2)).astype(np.float32)
    valid = rng.random((4, 5)) > 0.3
    field = MotionField(mv, valid, 16)
    grids = [((16, 20), 4), ((8, 10), 8), ((2, 3), 32)]
    for (hw, s), flow in zip(grids, field_to_flows(field, grids), strict=True):
        assert torch.equal(flow, field_to_flow(field, hw, s))
