"""The one frame sink: what every run writes for each frame, and what it says about them.

A single run (:mod:`bmvseg.run.to_dir`) and a job's chunk worker (:mod:`bmvseg.distributed`)
both turn engine results into the same things through this module, so a new output format is
added here once:

- :func:`label_png`: a frame's label file (uint8 class ids as PNG; :func:`check_storable`
  refuses a model whose class ids do not fit, before any folder is claimed);
- :class:`OverlayEncoder`: the overlay video (labels blended over the frame, a legend strip of
  the classes present, keyframes marked), written to any seekable binary file, a temporary
  file or a chunk's in-memory piece;
- :class:`FrameLog`: the facts of a run of frames (count, keyframes, damage, the reader's
  choices, the model's classes and cut), the same for a whole video and for a chunk;
  :mod:`bmvseg.output.summary` merges them into the summary;
- :class:`FrameSink`: a claimed folder's label files, overlay, ``classes.json`` and
  ``summary.json``, each file written whole under a new temporary name and renamed into place
  (:class:`~bmvseg.output.rundir.RunDir`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import cv2
import numpy as np

from bmvseg.data.classes import ClassSet, overlay_frame
from bmvseg.errors import BmvsegError
from bmvseg.output.overlay import join_pieces
from bmvseg.output.rundir import RunDir
from bmvseg.output.yuv_overlay import YuvOverlay
from bmvseg.video.encode import OVERLAY_OPTIONS, VideoWriter

MAX_CLASSES = 256  # label files hold uint8 class ids
CLASSES_FILE = "classes.json"  # ClassSet.record() of the run's model, beside its labels


def check_storable(num_classes: int, model: str = "the model") -> None:
    """Refuse a model whose class ids cannot be written as uint8 label files."""
    if num_classes > MAX_CLASSES:
        raise BmvsegError(
            f"{model} has {num_classes} classes; label files hold class ids 0..{MAX_CLASSES - 1} "
            f"(uint8 PNG), so at most {MAX_CLASSES} classes can be written"
        )


def label_png(labels: np.ndarray) -> bytes:
    """A frame's label file: its (H, W) uint8 class ids as PNG bytes."""
    ok, data = cv2.imencode(".png", labels)
    if not ok:  # pragma: no cover - cv2 fails only on invalid arrays
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


class OverlayEncoder:
    """The overlay video into ``dest`` (an open binary file, or a URL with ``mpegts``), one
    result at a time: MP4 for files, MPEG-TS where it must play while written (a live run)."""

    def __init__(self, dest: BinaryIO | str, fps: float, classes: ClassSet, *,
                 container_format: str = "mp4", options: dict | None = None) -> None:  # fmt: skip
        self.classes = classes
        self._legend = classes.legend()
        self._yuv = YuvOverlay(classes.palette, self._legend)
        self._writer = VideoWriter(dest, fps=fps, options=options or OVERLAY_OPTIONS,
                                   container_format=container_format)  # fmt: skip

    def add(self, res: Any) -> None:
        """Draw one result's frame: on the decoded picture's own planes where it allows
        (:mod:`bmvseg.output.yuv_overlay`), in RGB otherwise."""
        i420 = res.frame.i420() if res.frame is not None else None
        if i420 is not None:
            self._writer.write_i420(self._yuv.draw(i420, res.labels, res.keyframe), time=res.time)
            return
        rgb = overlay_frame(res.image, res.labels, self.classes.palette, res.keyframe, self._legend)
        self._writer.write(rgb, time=res.time)

    def close(self) -> None:
        self._writer.close()


class FrameLog:
    """What a run of frames says about itself (see :meth:`facts`); ``model``: what made them."""

    def __init__(self, model: Any = None) -> None:
        self.classes = ClassSet.of(model) if model is not None else None
        self.split = getattr(model, "split", None)
        self.frames = 0
        self.keyframes: list[dict] = []
        self.cuts: list[int] = []
        self.first_time: float | None = None

    def add(self, res: Any) -> None:
        if self.first_time is None:
            self.first_time = res.time
        if res.keyframe:  # reason: the placing one; reasons: all (a cut may be one of several)
            self.keyframes.append({"index": res.index, "reason": res.reason,
                                   "reasons": list(res.reasons)})  # fmt: skip
        if res.cut:
            self.cuts.append(res.index)
        self.frames += 1

    def facts(self, reader: Any, stage_ms: dict[str, float], wall_s: float) -> dict:
        """The part's facts: the keys :func:`bmvseg.output.summary.summarize` merges."""
        return {
            "frames": self.frames,
            "first_time": self.first_time,
            "wall_s": round(wall_s, 3),
            "keyframes": self.keyframes,
            "cuts": self.cuts,
            "stream_ended_early": reader.truncated,
            # Frames the decoder concealed damage in, and those predicted from them (up to the
            # next I-frame): their labels are not clean.
            "damaged_frames": list(reader.damaged_frames),
            "concealed_frames": list(reader.concealed_frames),
            "stream_index": reader.stream_index,
            "notices": [n for n in reader.notices if n],
            "motion_source": reader.motion_source,
            "motion_reason": reader.motion_reason,
            "width": reader.width,
            "height": reader.height,
            "input_fps": reader.fps,
            "stage_ms_per_frame": {k: round(v, 3) for k, v in stage_ms.items()},
            "classes": self.classes.record() if self.classes is not None else None,
            "model_split": self.split,
        }


class FrameSink:
    """A claimed folder's label files and overlay video.

    ``write`` takes engine results (a single run); ``write_png`` takes label files already
    encoded elsewhere (a chunk's results) and ``join_overlay`` the chunks' overlay pieces.
    Label files of frames before ``from_index`` are kept as they are (a resumed run).  The
    overlay is drawn only with ``classes`` (a chunk's pieces are drawn by its worker).
    """

    def __init__(self, out: RunDir, *, overlay: bool, fps: float = 25.0,
                 classes: ClassSet | None = None, from_index: int = 0) -> None:  # fmt: skip
        self.out = out
        self.from_index = from_index
        self.overlay_path = out.path / "overlay.mp4"
        self._tmp: Path | None = None
        self._file: BinaryIO | None = None
        self._encoder: OverlayEncoder | None = None
        if overlay and classes is not None:
            self._tmp, self._file = out.create_tmp(self.overlay_path)
            self._encoder = OverlayEncoder(self._file, fps, classes)

    def write(self, res: Any) -> None:
        if res.index >= self.from_index:
            self.write_png(res.index, label_png(res.labels))
        if self._encoder is not None:
            self._encoder.add(res)

    def write_png(self, index: int, data: bytes) -> None:
        self.out.write_bytes(self.out.label_path(index), data)

    def close(self) -> None:
        """Finish the overlay and rename it into place."""
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
            self._file.close()
            self._file = None
            self.out.commit(self._tmp, self.overlay_path)
            self._tmp = None

    def discard(self) -> None:
        """A failed run: the unfinished overlay goes (label files written so far stay whole)."""
        for step in (self._encoder and self._encoder.close, self._file and self._file.close):
            try:
                if step is not None:
                    step()
            except Exception:  # noqa: BLE001, S110 - failing already: that error is reported
                pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._encoder = self._file = self._tmp = None

    def join_overlay(self, pieces: list[Path], starts: list[float] | None) -> None:
        """``overlay.mp4`` from the chunks' pieces (in frame order), without re-encoding."""
        tmp, fh = self.out.create_tmp(self.overlay_path)
        try:
            with fh:
                join_pieces(pieces, fh, starts)
        except (OSError, BmvsegError):
            tmp.unlink(missing_ok=True)
            raise
        self.out.commit(tmp, self.overlay_path)

    def write_summary(self, summary: dict) -> None:
        """``classes.json`` (the summary's ``classes``: what the label ids mean, for readers
        that want only that), then ``summary.json``, written last: it says the run is complete."""
        if summary.get("classes") is not None:
            self.out.write_json(CLASSES_FILE, summary["classes"])
        self.out.write_json("summary.json", summary)
