"""``bmvseg segment``'s run: every frame's labels, an overlay video and a summary, on disk.

Layout of the output directory (owned by :mod:`bmvseg.output.rundir`): ``labels/NNNNNN.png``
(uint8 class ids, frame index as in :mod:`bmvseg.schemes.engine`), ``overlay.mp4``,
``run.json`` (what the run is, written first) and ``summary.json`` (written last; says
whether the run completed).  Decoding runs ahead of the model and writing behind it, each in a
thread (:mod:`bmvseg.run.background`); the run ends only when everything is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bmvseg.errors import BmvsegError
from bmvseg.output import claim_output_dir, input_fingerprint
from bmvseg.output.frames import FrameLog, FrameSink, check_storable
from bmvseg.output.rundir import RunDir
from bmvseg.output.summary import summarize
from bmvseg.run.background import Worker, ahead
from bmvseg.run.build import build_engine
from bmvseg.run.iterate import collected_every, open_video
from bmvseg.run.options import RunOptions
from bmvseg.schemes.engine import Engine, FrameResult
from bmvseg.schemes.timing import StageTimer
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

    Everything that can refuse the run (the video, the options, the model and whether its
    labels can be stored, the directory's owner) is checked before the directory is touched.
    ``notice`` receives one-line notices, ``progress`` (frames done, total if known) is called
    once per frame.
    """
    video = Path(video)
    reader = open_video(video, options)
    try:
        for text in _notices(reader, video):
            notice(text)
        identity, about = run_record(video, options, end)
        timer = StageTimer()
        engine = build_engine(options, timer=timer)
        check_storable(engine.model.num_classes, _model_name(options))
        out: RunDir = claim_output_dir(output, "segment", identity, inputs=[video],
                                       resume=resume, overwrite=overwrite)  # fmt: skip
        resume_from = 0
        if resume:  # from the last frame where every run places the same later keyframes
            stable = engine.cfg.schedule().stable
            resume_from = next(i for i in range(out.done_prefix(), -1, -1) if stable(i))
        out.write_json("run.json", {**about, **identity})
        sink = FrameSink(out, overlay=overlay, fps=reader.fps, palette=engine.model.palette,
                         from_index=resume_from)  # fmt: skip
        part, wall = _write(reader, engine, sink, progress, end)
        if reader.damage_notice:  # known only once the frames are read
            notice(reader.damage_notice)
    finally:
        reader.close()
    summary = summarize([part], about=about, identity=identity, wall_s=wall,
                        rotation=reader.rotation, device=str(options.device),
                        command=command or "bmvseg.segment_to_dir (Python)",
                        resumed_from=resume_from)  # fmt: skip
    sink.write_summary(summary)
    return summary


def _model_name(options: RunOptions) -> str:
    return f"model {options.model}" if isinstance(options.model, str) else "the model"


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


def _write(
    reader, engine: Engine, sink: FrameSink, progress: Callable[[int, int | None], None],
    end: int | None,
) -> tuple[dict, float]:  # fmt: skip
    """The frame loop: engine results handed to the writer thread; the part's facts and wall."""
    writer = Worker(sink.write, name="writer")
    frames = ahead(reader.frames(end=end), depth=8)
    log = FrameLog()
    t0 = time.perf_counter()
    try:
        with collected_every() as tick:
            for res in _resumed(frames, engine, sink.out, sink.from_index, end):
                log.add(res)
                writer.submit(res)
                tick()
                progress(log.frames, reader.frame_count)
        writer.close()
        sink.close()
    except OSError as exc:
        raise BmvsegError(f"cannot write to {sink.out.path}: {exc.strerror or exc}") from exc
    finally:
        frames.close()
        # Failing already (that error, not these, is reported): the writer finishes the files
        # it was handed (each complete, by rename) before the run returns; the overlay goes.
        writer.stop()
        sink.discard()
    wall = time.perf_counter() - t0
    return log.facts(reader, stage_ms(engine, writer, log.frames), wall), wall


def stage_ms(engine: Engine, writer: Worker, frames: int) -> dict[str, float]:
    """Wall time of the model's thread per frame, by stage; "write_wait" is the time it waited
    for the writer (writing not hidden), "write_busy" the writer thread's own."""
    n = max(frames, 1)
    stages = {k: v for k, v in engine.timer.mean_ms().items() if k != "write"}
    stages.update(write_wait=1000 * writer.waited / n, write_busy=1000 * writer.busy / n)
    return stages


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
