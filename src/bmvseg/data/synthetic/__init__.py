"""Procedurally generated street videos with exact per-pixel labels and exact motion.

Why: a first run needs a video and ground truth without any download, and tests need scenes
whose true motion is known to measure the codec's vectors against it.

A seeded pinhole camera drives down a street of textured planes (:mod:`.scene`); every pixel is
ray cast (:mod:`.render`), so its class and where its content was one frame earlier are known
exactly.  :func:`render_clip` gives a :class:`SyntheticClip` (stream or materialise it),
:func:`write_clip` encodes it with H.264 beside ``labels.npz``, ``flow.npz`` and ``meta.json``,
and :class:`SyntheticScenes` is a dataset of generated frames with CamVid's 11 classes.
"""

from bmvseg.data.synthetic.clip import (
    DEFAULT_CODEC_OPTIONS,
    SyntheticClip,
    SyntheticFrame,
    WrittenClip,
    read_clip,
    render_clip,
    write_clip,
)
from bmvseg.data.synthetic.dataset import SPLIT_SEEDS, SyntheticDataset, SyntheticScenes, split_seed

__all__ = [
    "DEFAULT_CODEC_OPTIONS",
    "SPLIT_SEEDS",
    "SyntheticClip",
    "SyntheticDataset",
    "SyntheticFrame",
    "SyntheticScenes",
    "WrittenClip",
    "read_clip",
    "render_clip",
    "split_seed",
    "write_clip",
]
