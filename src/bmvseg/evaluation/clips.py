"""Evaluation clips: an encoded video plus ground-truth labels for some of its frames.

Frame indices are the reader's (0-based presentation order).  ``labels`` maps a frame index to
a ``(H, W)`` uint8 label map (255 = void); ``None`` means an unlabelled video, where the
benchmark uses the per-frame model's own labels as the reference (fidelity, not accuracy).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bmvseg.data.camvid import video_run, video_run_labels
from bmvseg.data.classes import IGNORE_INDEX
from bmvseg.data.images import read_rgb
from bmvseg.video.encode import CLIP_OPTIONS as ENCODING
from bmvseg.video.encode import encode_video


@dataclass
class EvalClip:
    """A video and the labels of some of its frames (None: score against per-frame)."""
    name: str
    video: Path
    labels: dict[int, np.ndarray] | None
    encoding: dict = field(default_factory=dict)


def camvid_run(root: str | Path, workdir: Path) -> EvalClip:
    """CamVid's 15 Hz labelled 0016E5 run (val/) encoded as a 15 fps H.264 video."""
    frames = video_run(root)
    video = workdir / "camvid_0016E5_15fps.mp4"
    settings = encode_video((read_rgb(p) for p in frames), video, fps=15.0, options=ENCODING)
    labels = {}
    for i, p in enumerate(video_run_labels(root)):
        lab = np.array(_read_label(p))
        lab[lab >= 11] = IGNORE_INDEX
        labels[i] = lab
    return EvalClip("camvid-0016E5-15Hz", video, labels, settings)


def _read_label(path: Path) -> np.ndarray:
    import cv2

    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def cityscapes_snippets(root: str | Path, workdir: Path, split: str = "val",
                        limit: int | None = None) -> Iterator[EvalClip]:  # fmt: skip
    """Each 30-frame Cityscapes snippet as a 17 fps video with its one labelled frame (the 20th)."""
    from bmvseg.data.cityscapes import CityscapesSequence

    seq = CityscapesSequence(root, split)
    for i in range(len(seq) if limit is None else min(limit, len(seq))):
        snip = seq[i]
        video = workdir / f"{snip.name}.mp4"
        settings = encode_video(
            (read_rgb(p) for p in snip.frames), video, fps=17.0, options=ENCODING
        )
        yield EvalClip(snip.name, video, {snip.labelled_index: snip.label()}, settings)


def synthetic_clip(workdir: Path, *, seed: int = 200000, frames: int = 60, height: int = 240,
                   width: int = 320) -> EvalClip:  # fmt: skip
    """A generated street clip, exact labels on every frame (test-split seed: never trained on)."""
    from bmvseg.data.synthetic.clip import read_clip, render_clip, write_clip

    clip = render_clip(seed, height, width, frames)
    video = write_clip(clip, workdir / f"synthetic-{seed}", codec_options=ENCODING, flow=False)
    written = read_clip(video.parent)
    labels = {i: written.labels[i] for i in range(len(written.labels))}
    return EvalClip(f"synthetic-seed{seed}", video, labels, written.meta.get("encoder", {}))


def unlabelled(video: str | Path) -> EvalClip:
    """A user's own video: the per-frame model's labels become the reference."""
    return EvalClip(Path(video).name, Path(video), None, {"source": "user video, as given"})
