"""``bmvseg segment``'s run: every frame's labels, an overlay video and a summary, on disk.

Layout of the output directory (owned by :mod:`bmvseg.output.rundir`): ``labels/NNNNNN.png``
(uint8 class ids, frame index as in :mod:`bmvseg.schemes.engine`), ``overlay.mp4``,
``run.json`` (what the run is, written first) and ``summary.json`` (written last; says
whether the run completed).  Decoding runs ahead of the model and writing behind it, each in a
thread (:mod:`bmvseg.run.background`); the run ends only when everything is written.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bmvseg.data.classes import ClassSet
from bmvseg.errors import BmvsegError
from bmvseg.output import claim_output_dir, input_fingerprint
from bmvseg.output.frames import FrameLog, FrameSink, check_storable
from bmvseg.output.rundir import RunDir
from bmvseg.output.summary import summarize
from bmvseg.run.background import Worker, ahead
from bmvseg.run.build import build_engine
from bmvseg.run.frame_range import Position, resolve
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
    start: Position | None = None,
    end: Position | None = None,
    max_frames: int | None = None,
) -> dict:
    """Segment ``video`` into ``output``; returns the summary also written as summary.json.

    Only frames ``start <= index < end``, at most ``max_frames`` of them, are written: frame
    numbers or times (``"1:30"``, see :mod:`bmvseg.run.frame_range`); their labels are those
    frames of a whole run (the engine starts at the stable keyframe at or before ``start``).

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
        start, end = resolve(start, end, max_frames, reader.fps, reader.frame_count)
        identity, about = run_record(video, options, end, start)
        timer = StageTimer()
        engine = build_engine(options, timer=timer)
        check_storable(engine.model.num_classes, _model_name(options))
        out: RunDir = claim_output_dir(output, "segment", identity, inputs=[video],
                                       resume=resume, overwrite=overwrite)  # fmt: skip
        # The engine starts where every run places the same later keyframes: at or before
        # ``start``, and on resume at or before the first frame without labels.
        stable = engine.cfg.schedule().stable
        run_from = next(i for i in range(start, -1, -1) if stable(i))
        resume_from = run_from
        if resume:
            missing = out.done_prefix(start)
            resume_from = max(run_from, next(i for i in range(missing, -1, -1) if stable(i)))
        out.write_json("run.json", {**about, **identity})
        sink = FrameSink(out, overlay=overlay, fps=reader.fps, classes=ClassSet.of(engine.model),
                         from_index=max(start, resume_from))  # fmt: skip
        span = _Span(start, end, run_from, resume_from)
        part, wall = _write(reader, engine, sink, progress, span)
        if reader.damage_notice:  # known only once the frames are read
            notice(reader.damage_notice)
    finally:
        reader.close()
    summary = summarize([part], about=about, identity=identity, wall_s=wall,
                        rotation=reader.rotation, device=str(options.device),
                        command=command or "bmvseg.segment_to_dir (Python)",
                        resumed_from=max(start, resume_from))  # fmt: skip
    sink.write_summary(summary)
    return summary


def _model_name(options: RunOptions) -> str:
    return f"model {options.model}" if isinstance(options.model, str) else "the model"


def run_record(video: Path, options: RunOptions, end: int | None = None, start: int = 0
               ) -> tuple[dict, dict]:  # fmt: skip
    """(identity, about) of a run: what ``--resume`` must find unchanged (the input by its
    content, every option that changes the labels, the frame range) and what is recorded for
    people."""
    identity = {"video_fingerprint": input_fingerprint(video), **options.identity(),
                "start": start, "end": end}  # fmt: skip
    return identity, {"video": str(video.resolve()), "video_bytes": video.stat().st_size}


def _notices(reader, video: Path) -> Iterator[str]:
    yield from reader.notices
    if reader.rotation:
        yield (f"{video}: the container asks players to rotate it {reader.rotation} degrees "
               f"counter-clockwise; labels and overlay keep the stored "
               f"{reader.width}x{reader.height} orientation")  # fmt: skip


@dataclass(frozen=True)
class _Span:
    """Frames ``start <= index < end`` are written; the engine runs from ``resume_from``
    (labels of ``[start, resume_from)`` are on disk already) and decoding from ``run_from``."""

    start: int
    end: int | None
    run_from: int
    resume_from: int

    def total(self, frame_count: int | None) -> int | None:
        last = self.end if frame_count is None else min(self.end or frame_count, frame_count)
        return None if last is None else max(last - self.start, 0)


def _write(
    reader, engine: Engine, sink: FrameSink, progress: Callable[[int, int | None], None],
    span: _Span,
) -> tuple[dict, float]:  # fmt: skip
    """The frame loop: engine results handed to the writer thread; the part's facts and wall."""
    writer = Worker(sink.write, name="writer")
    # No end for the reader: a fusing scheme reads on to the keyframe after ``end - 1``, and
    # the engine stops reading when it has the range.
    frames = ahead(reader.frames(start=span.run_from), depth=8)
    log = FrameLog(engine.model)
    total = span.total(reader.frame_count)
    t0 = time.perf_counter()
    try:
        with collected_every() as tick:
            for res in _resumed(frames, engine, sink.out, span):
                log.add(res)
                writer.submit(res)
                tick()
                progress(log.frames, total)
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


def _resumed(frames: Iterator[Frame], engine: Engine, out: RunDir, span: _Span
             ) -> Iterator[FrameResult]:  # fmt: skip
    """The results of ``[span.start, span.end)``: frames before ``span.resume_from`` come back
    with the labels already on disk; the engine does the rest, from a stable keyframe.

    The engine's range contract (a range from a stable keyframe gives the labels of a whole
    run) is what makes a range, and a resumed run, equal to those frames of an uninterrupted
    whole run; frames the engine needed before ``span.start`` are not yielded.
    """
    for fr in frames:
        if fr.index >= span.resume_from:
            break
        if fr.index >= span.start:
            yield FrameResult(fr.index, fr.time, out.read_labels(fr.index), 0, fr)
    else:
        return
    for res in engine.run(itertools.chain([fr], frames), start=span.resume_from, end=span.end):
        if res.index >= span.start:
            yield res
