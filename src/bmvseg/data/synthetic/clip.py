"""Generated clips: stream or materialise frames, labels and exact flow; write them to disk.

A clip is a pure function of ``(seed, height, width, frames, fps)``: any frame can be rendered
on its own, in any order, and comes out the same every time.

On disk (:func:`write_clip`) a clip is a directory::

    video.mp4     H.264 (libx264, one reference frame, no B-frames: see meta.json "encoder")
    labels.npz    "labels": (T, H, W) uint8 CamVid ids (bmvseg.data.classes; never 255)
    flow.npz      "flow": (T, H, W, 2) int16 in 1/16 pixel ("scale": 16), backward (pull)
                  flow, x first: the content at pixel centre p of frame t was at
                  p + flow[t][p] / scale in frame t-1 (the convention of bmvseg.video.motion);
                  flow[0] is zero.  read_clip returns it as float32 pixels.
    meta.json     seed, size, fps, frame count, encoder settings, class names, palette
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from bmvseg.data.classes import CAMVID_CLASSES, CAMVID_PALETTE
from bmvseg.data.synthetic.render import Renderer
from bmvseg.data.synthetic.scene import Scene, build_scene
from bmvseg.errors import BmvsegError
from bmvseg.video.encode import X264_ONE_REF, encode_video

FLOW_SCALE = 16  # flow is stored in 1/16 pixel steps: half the size of float16 once compressed
# Encoder settings under which the stream's vectors are frame-to-previous-frame motion.
DEFAULT_CODEC_OPTIONS: dict[str, str] = {**X264_ONE_REF, "preset": "medium", "crf": "23"}
VIDEO_NAME = "video.mp4"


@dataclass(frozen=True)
class SyntheticFrame:
    """One rendered frame with its exact ground truth."""

    index: int
    rgb: np.ndarray  # (H, W, 3) uint8 RGB
    labels: np.ndarray  # (H, W) uint8 CamVid ids
    flow: np.ndarray | None  # (H, W, 2) float32 backward flow to frame index - 1 (zeros at 0)


class SyntheticClip:
    """A procedurally generated street clip; frames are rendered on demand.

    Iterate it to stream :class:`SyntheticFrame` objects (memory stays one frame), call
    :meth:`frame` for random access, or :meth:`arrays` to materialise everything.
    """

    def __init__(self, seed: int = 0, height: int = 360, width: int = 480, frames: int = 150,
                 fps: float = 15.0):  # fmt: skip
        if height < 16 or width < 16 or frames < 1 or fps <= 0:
            raise BmvsegError(
                f"synthetic clip needs height, width >= 16, frames >= 1 and fps > 0; got "
                f"{height}x{width}, {frames} frames at {fps} fps"
            )
        self.seed, self.height, self.width = int(seed), int(height), int(width)
        self.num_frames, self.fps = int(frames), float(fps)

    @cached_property
    def scene(self) -> Scene:
        return build_scene(self.seed, self.width, self.height, self.num_frames / self.fps)

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.scene, self.fps, self.seed)

    def __len__(self) -> int:
        return self.num_frames

    def frame(self, index: int, *, flow: bool = True, rgb: bool = True) -> SyntheticFrame:
        """Render frame ``index``; skip the flow or the colour when not needed (cheaper)."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} outside 0..{self.num_frames - 1}")
        g, rays, C, _ = self.renderer.gbuffer(index)
        return SyntheticFrame(
            index,
            self.renderer.shade(index, g, rays) if rgb else np.empty((0, 0, 3), np.uint8),
            g.labels,
            self.renderer.flow(index, g, rays, C) if flow else None,
        )

    def __iter__(self) -> Iterator[SyntheticFrame]:
        for i in range(self.num_frames):
            yield self.frame(i)

    def frames(self) -> Iterator[np.ndarray]:
        """The RGB frames only, streamed."""
        for i in range(self.num_frames):
            yield self.frame(i, flow=False).rgb

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Everything at once: rgb (T,H,W,3) uint8, labels (T,H,W) uint8, flow (T,H,W,2) f32."""
        t, h, w = self.num_frames, self.height, self.width
        rgb = np.empty((t, h, w, 3), np.uint8)
        labels = np.empty((t, h, w), np.uint8)
        flow = np.empty((t, h, w, 2), np.float32)
        for f in self:
            rgb[f.index], labels[f.index], flow[f.index] = f.rgb, f.labels, f.flow
        return rgb, labels, flow

    @property
    def meta(self) -> dict[str, object]:
        return {
            "generator": "bmvseg.data.synthetic",
            "seed": self.seed,
            "height": self.height,
            "width": self.width,
            "frames": self.num_frames,
            "fps": self.fps,
            "class_names": list(CAMVID_CLASSES),
            "palette": CAMVID_PALETTE.tolist(),
            "flow_convention": "backward pull: content at pixel centre p of frame t was at "
            "p + flow[t][p] in frame t-1 (pixels, x first); flow[0] = 0",
        }


def render_clip(seed: int = 0, height: int = 360, width: int = 480, frames: int = 150,
                fps: float = 15.0) -> SyntheticClip:  # fmt: skip
    """The clip for ``seed`` (nothing is rendered until frames are asked for)."""
    return SyntheticClip(seed, height, width, frames, fps)


def write_clip(
    clip: SyntheticClip,
    directory: str | os.PathLike,
    *,
    codec_options: Mapping[str, str] | None = None,
    flow: bool = True,
) -> Path:
    """Encode the clip to ``directory/video.mp4`` with its labels, flow and meta; returns the video.

    Streams: one frame is rendered at a time; labels (and flow) are collected.
    """
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BmvsegError(f"cannot create clip directory {out}: {exc}") from None
    t, h, w = clip.num_frames, clip.height, clip.width
    labels = np.empty((t, h, w), np.uint8)
    flows = np.empty((t, h, w, 2), np.int16) if flow else None

    def rgb_stream() -> Iterator[np.ndarray]:
        for i in range(t):
            f = clip.frame(i, flow=flow)
            labels[i] = f.labels
            if flows is not None:
                np.clip(np.rint(f.flow * FLOW_SCALE), -32768, 32767, out=f.flow)
                flows[i] = f.flow
            yield f.rgb

    options = dict(DEFAULT_CODEC_OPTIONS if codec_options is None else codec_options)
    video = out / VIDEO_NAME
    settings = encode_video(rgb_stream(), video, fps=clip.fps, options=options)
    np.savez_compressed(out / "labels.npz", labels=labels)
    if flows is not None:
        np.savez_compressed(out / "flow.npz", flow=flows, scale=np.int16(FLOW_SCALE))
    meta = {**clip.meta, "encoder": settings, "video": VIDEO_NAME}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return video


@dataclass
class WrittenClip:
    """A clip directory read back: the video path, ground truth, and metadata."""

    video: Path
    labels: np.ndarray
    flow: np.ndarray | None  # (T, H, W, 2) float32 pixels, to within 1/32 pixel
    meta: dict


def read_clip(directory: str | os.PathLike) -> WrittenClip:
    """Load what :func:`write_clip` wrote (flow is None if it was not saved)."""
    d = Path(directory)
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise BmvsegError(f"{d} is not a synthetic clip directory (no meta.json)")
    meta = json.loads(meta_path.read_text())
    video = d / meta.get("video", VIDEO_NAME)
    if not video.is_file() or not (d / "labels.npz").is_file():
        raise BmvsegError(f"synthetic clip {d} is incomplete: need {video.name} and labels.npz")
    with np.load(d / "labels.npz") as z:
        labels = z["labels"]
    flow = None
    if (d / "flow.npz").is_file():
        with np.load(d / "flow.npz") as z:
            flow = z["flow"].astype(np.float32) / float(z["scale"])
    return WrittenClip(video, labels, flow, meta)
