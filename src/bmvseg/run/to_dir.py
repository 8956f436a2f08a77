"""``bmvseg segment``'s run: every frame's labels, an overlay video and a summary, on disk.

Layout of the output directory (owned by :mod:`bmvseg.output.rundir`): ``labels/NNNNNN.png``
(uint8 class ids, frame index as in :mod:`bmvseg.schemes.engine`), ``overlay.mp4``,
``run.json`` (what the run is, written first) and ``summary.json`` (written last; says
whether the run completed).  Decoding runs ahead of the model and writing behind it, each in a
thread (:mod:`bmvseg.run.background`); the run ends only when everything is written.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from bmvseg.data.classes import overlay_frame
from bmvseg.errors import BmvsegError
from bmvseg.output import RunDir, claim_output_dir, input_fingerprint
from bmvseg.run.background import Worker, ahead
from bmvseg.run.build import build_engine
from bmvseg.run.options import RunOptions
from bmvseg.run.stream import collected_every, open_video
from bmvseg.schemes.engine import Engine, FrameResult
from bmvseg.schemes.timing import StageTimer
from bmvseg.video.encode import OVERLAY_OPTIONS, VideoWriter
from bmvseg.video.frame import Frame


def segment_to_dir(
    video: str | os.PathLike,
    output: str | os.PathLike,
    options: RunOptions,
    *,
    overlay: bool = True,
    resume: bool = False,
    overwrite: bool = False,
    notice: Callable[[str], None] = lambda text: None,
    progress: Callable[[int, int | None], None] = lambda done, total: None,
    command: str | None = None,
    end: int | None = None,
) -> dict:
    """Segment ``video`` into ``output``; returns the summary also written as summary.json.

    ``end`` stops after frame ``end - 1`` (the benchmark's timing of a video's first frames).

    Everything that can refuse the run (the video, the options, the model, the directory's
    owner) is checked before the directory is touched.  ``notice`` receives one-line notices,
    ``progress`` (frames done, total if known) is called once per frame.
    """
    options.validate()
    video = Path(video)
    reader = open_video(video, options)
    try:
        for text in _notices(reader, video):
            notice(text)
        identity, about = run_record(video, options, end)
        timer = StageTimer()
        engine = build_engine(options, timer=timer)
        out: RunDir = claim_output_dir(output, "segment", identity, inputs=[video],
                                       resume=resume, overwrite=overwrite)  # fmt: skip
        resume_from = 0
        if resume:  # from the last frame where every run places the same later keyframes
            stable = engine.cfg.schedule().stable
            resume_from = next(i for i in range(out.done_prefix(), -1, -1) if stable(i))
        out.write_json("run.json", {**about, **identity})
        summary = _write(reader, engine, out, resume_from, overlay, progress, end)
        if reader.damage_notice:  # known only once the frames are read
            notice(reader.damage_notice)
    finally:
        reader.close()
    summary = {
        **about,
        **identity,
        **summary,
        "command": command or "bmvseg.segment_to_dir (Python)",
        "device": str(options.device),
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
    }
    out.write_json("summary.json", summary)
    return summary


def run_record(video: Path, options: RunOptions, end: int | None = None) -> tuple[dict, dict]:
    """(identity, about) of a run: what ``--resume`` must find unchanged (the input by its
    content, every option that changes the labels) and what is recorded for people."""
    identity = {"video_fingerprint": input_fingerprint(video), **options.identity(), "end": end}
    return identity, {"video": str(video.resolve()), "video_bytes": video.stat().st_size}


def _notices(reader, video: Path) -> Iterator[str]:
    yield from reader.notices
    if reader.rotation:
        yield (f"{video}: the container asks players to rotate it {reader.rotation} degrees "
               f"counter-clockwise; labels and overlay keep the stored "
               f"{reader.width}x{reader.height} orientation")  # fmt: skip


def _write(reader, engine: Engine, out: RunDir, resume_from: int, overlay: bool,
           progress: Callable[[int, int | None], None], end: int | None) -> dict:  # fmt: skip
    """The frame loop: engine results handed to the writer thread; the summary's run facts."""
    timer = engine.timer
    palette = engine.model.palette
    overlay_final = out.path / "overlay.mp4"
    overlay_tmp = out.tmp_path(overlay_final)
    video_out = None
    if overlay:
        video_out = VideoWriter(overlay_tmp, fps=reader.fps, options=OVERLAY_OPTIONS)

    def write(res: FrameResult) -> None:
        if res.index >= resume_from:
            out.write_labels(res.index, res.labels)
        if video_out is not None:
            video_out.write(overlay_frame(res.image, res.labels, palette, res.keyframe),
                            time=res.time)

    writer = Worker(write, name="writer")
    frames = ahead(reader.frames(end=end), depth=8)
    t0 = time.perf_counter()
    count = 0
    keyframes: list[dict] = []
    try:
        with collected_every() as tick:
            for res in _resumed(frames, engine, out, resume_from, end):
                if res.keyframe:
                    keyframes.append({"index": res.index, "reason": res.reason})
                writer.submit(res)
                count += 1
                tick()
                progress(count, reader.frame_count)
        writer.close()
        if video_out is not None:
            video_out.close()
            video_out = None
            out.commit(overlay_tmp, overlay_final)
    except OSError as exc:
        raise BmvsegError(f"cannot write to {out.path}: {exc.strerror or exc}") from exc
    finally:
        frames.close()
        # Failing already (that error, not these, is reported): the writer finishes the files
        # it was handed (each complete, by rename) before the run returns; the overlay goes.
        with contextlib.suppress(BaseException):
            writer.close()
        if video_out is not None:
            with contextlib.suppress(Exception):
                video_out.close()
            overlay_tmp.unlink(missing_ok=True)
    wall = time.perf_counter() - t0
    stages = {k: round(v, 3) for k, v in timer.mean_ms().items() if k != "write"}
    n = max(count, 1)
    return {
        "complete": True,
        "stream_ended_early": reader.truncated,
        "frames": count,
        "resumed_from": resume_from,
        "wall_time_s": round(wall, 3),
        "fps": round(count / wall, 3) if wall > 0 else None,
        # Wall time of the model's thread per frame, by stage; "write_wait" is the time it
        # waited for the writer (writing not hidden), "write_busy" the writer thread's own.
        "stage_ms_per_frame": {**stages, "write_wait": round(1000 * writer.waited / n, 3),
                               "write_busy": round(1000 * writer.busy / n, 3)},  # fmt: skip
        "keyframes": keyframes,
        # Frames the decoder concealed damage in, and those predicted from them (up to the next
        # I-frame): their labels are not clean; the first clean frame after them is a keyframe.
        "damaged_frames": list(reader.damaged_frames),
        "concealed_frames": list(reader.concealed_frames),
        "stream_index": reader.stream_index,
        "notices": [n for n in (*reader.notices,) if n],
        "motion_source": reader.motion_source,
        "motion_reason": reader.motion_reason,
        "width": reader.width,
        "height": reader.height,
        "rotation": reader.rotation,
    }


def _resumed(frames: Iterator[Frame], engine: Engine, out: RunDir, start: int,
             end: int | None) -> Iterator[FrameResult]:  # fmt: skip
    """Frames before ``start`` come back with the labels already on disk; the engine does the rest.

    The engine's range contract (a range from a keyframe gives the labels of a whole run) is
    what makes a resumed run's output identical to an uninterrupted one.
    """
    for fr in frames:
        if fr.index >= start:
            break
        yield FrameResult(fr.index, fr.time, out.read_labels(fr.index), False, 0, fr)
    else:
        return

    def rest() -> Iterator[Frame]:
        yield fr
        yield from frames

    yield from engine.run(rest(), start=start, end=end)
