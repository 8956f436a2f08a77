"""The re-encoder's vectors are quarter-pel accurate on clips with exactly known motion."""

from __future__ import annotations

import av
import numpy as np
import pytest

from bmvseg.data.textures import block_flow, moving_texture_clip
from bmvseg.video.estimate import X264MotionEstimator, x264_estimator_options
from bmvseg.video.motion import MotionField

FRAMES = 10


def yuv(rgb: np.ndarray) -> av.VideoFrame:
    """A decoded-looking frame: what the reader hands the estimator."""
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def per_frame_epe(fields: list[MotionField], flows: list[np.ndarray]) -> list[float]:
    """Median end-point error over valid cells, per frame t >= 1 (px)."""
    out = []
    for field, flow in zip(fields[1:], flows[1:], strict=True):
        assert field.valid.mean() > 0.9, "most blocks of a textured clip are inter-coded"
        err = np.linalg.norm(field.mv - block_flow(flow, field.block), axis=-1)[field.valid]
        out.append(float(np.median(err)))
    return out


@pytest.mark.parametrize(
    ("kind", "speed", "size", "block"),
    [
        ("zoom", 1.0, (120, 160), 16),  # every cell moves differently, sub-pixel
        ("zoom", 2.0, (121, 159), 8),  # odd size, finer grid (8x8 partitions)
        ("translate", 3.3, (96, 128), 16),  # pan, several pixels per frame
    ],
)
def test_vectors_are_quarter_pel_accurate(kind, speed, size, block) -> None:
    h, w = size
    frames, flows = moving_texture_clip(kind, h, w, FRAMES, seed=3, speed=speed)
    est = X264MotionEstimator(h, w, block=block)
    fields = [est.push(yuv(f)) for f in frames]
    assert not fields[0].valid.any()  # nothing to compare the first frame with
    assert all(f.mv.shape[:2] == (-(-h // block), -(-w // block)) for f in fields)
    epe = per_frame_epe(fields, flows)
    assert np.median(epe) <= 0.2 and max(epe) <= 0.35, epe


def test_the_bound_catches_full_pel_vectors() -> None:
    frames, flows = moving_texture_clip("zoom", 120, 160, FRAMES, seed=3, speed=1.0)
    est = X264MotionEstimator(120, 160, options=x264_estimator_options(subme="0"))
    assert np.median(per_frame_epe([est.push(yuv(f)) for f in frames], flows)) > 0.2


def test_rgb_arrays_and_restarts() -> None:
    frames, flows = moving_texture_clip("translate", 96, 128, 6, seed=1, speed=2.0)
    est = X264MotionEstimator(96, 128)
    fields = [est.push(f) for f in frames[:3]]  # (H, W, 3) RGB arrays are accepted too
    restarted = est.push(frames[3], key=True)  # the chain restarts: no field for this frame
    assert not restarted.valid.any()
    fields += [restarted] + [est.push(f) for f in frames[4:]]
    good = fields[:3] + fields[4:]
    epe = per_frame_epe(good, flows[:3] + flows[4:])
    assert max(epe) <= 0.35, epe
