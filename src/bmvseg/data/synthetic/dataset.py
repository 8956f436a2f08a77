"""Generated street frames as a training / evaluation dataset with CamVid's interface.

Splits draw their clips from disjoint seed ranges (:data:`SPLIT_SEEDS`), so a model trained on
``train`` never saw the streets of ``val`` or ``test``; the demo's default clip comes from
``test``.  Items are ``(rgb uint8 (H, W, 3), labels uint8 (H, W))`` like
:class:`bmvseg.data.camvid.CamVid`.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from bmvseg.data.synthetic.clip import SyntheticClip
from bmvseg.errors import BmvsegError

SPLIT_SEEDS = {"train": 0, "val": 100_000, "test": 200_000}  # first seed of each split
DEFAULT_CLIPS = {"train": 40, "val": 4, "test": 4}
MAX_CLIPS = 100_000  # seeds per split range


def split_seed(split: str, clip: int = 0) -> int:
    """The seed of clip number ``clip`` of ``split``."""
    if split not in SPLIT_SEEDS:
        raise BmvsegError(
            f"unknown synthetic split {split!r}; expected one of {tuple(SPLIT_SEEDS)}"
        )
    if not 0 <= clip < MAX_CLIPS:
        raise BmvsegError(f"synthetic clip number {clip} outside 0..{MAX_CLIPS - 1}")
    return SPLIT_SEEDS[split] + clip


class SyntheticScenes(Dataset):
    """``clips`` generated clips of ``split``, ``frames_per_clip`` frames from each.

    The frames are spread evenly over a clip of ``clip_frames`` frames at ``fps``.  Deterministic:
    item ``i`` is always the same image.  ``cache`` keeps rendered items in memory (a 480x360
    item is about 0.7 MB), which makes epochs after the first render-free.
    """

    class_names = CAMVID_CLASSES
    palette = CAMVID_PALETTE
    num_classes = len(CAMVID_CLASSES)

    def __init__(
        self,
        split: str = "train",
        frames_per_clip: int = 10,
        clips: int | None = None,
        height: int = 360,
        width: int = 480,
        *,
        clip_frames: int = 150,
        fps: float = 15.0,
        cache: bool = True,
    ) -> None:
        clips = DEFAULT_CLIPS.get(split, 1) if clips is None else clips
        split_seed(split, max(clips - 1, 0))  # validates split and range
        if clips < 1 or not 1 <= frames_per_clip <= clip_frames:
            raise BmvsegError(
                f"synthetic dataset needs clips >= 1 and 1 <= frames_per_clip <= {clip_frames}; "
                f"got clips={clips}, frames_per_clip={frames_per_clip}"
            )
        self.split, self.clips, self.frames_per_clip = split, clips, frames_per_clip
        self.height, self.width, self.clip_frames, self.fps = height, width, clip_frames, fps
        self.cache = cache
        self._items: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._clips: OrderedDict[int, SyntheticClip] = OrderedDict()

    def __len__(self) -> int:
        return self.clips * self.frames_per_clip

    def locate(self, index: int) -> tuple[int, int]:
        """(seed, frame index in its clip) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} outside 0..{len(self) - 1}")
        c, j = divmod(index, self.frames_per_clip)
        frame = int((j + 0.5) * self.clip_frames / self.frames_per_clip)
        return split_seed(self.split, c), frame

    def _clip(self, seed: int) -> SyntheticClip:
        if seed in self._clips:
            self._clips.move_to_end(seed)
        else:
            self._clips[seed] = SyntheticClip(
                seed, self.height, self.width, self.clip_frames, self.fps
            )
            while len(self._clips) > 2:  # a scene's textures are tens of MB
                self._clips.popitem(last=False)
        return self._clips[seed]

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if index in self._items:
            return self._items[index]
        seed, frame = self.locate(index)
        f = self._clip(seed).frame(frame, flow=False)
        item = (f.rgb, f.labels)
        if self.cache:
            self._items[index] = item
        return item


def SyntheticDataset(root: str | Path | None, split: str, **kw) -> SyntheticScenes:  # noqa: N802
    """Factory for :func:`bmvseg.data.registry.get_dataset`; ``root`` is unused (no files)."""
    return SyntheticScenes(split, **kw)
