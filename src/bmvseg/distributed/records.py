"""What a job writes and reads back: each video's folder, its finished chunks, and job.json.

Each video's folder is claimed by the ownership rule (:mod:`bmvseg.output.rundir`, layout
``chunked``) and written through the one frame sink (:mod:`bmvseg.output.frames`): a chunk's
labels and overlay piece first, then its marker ``.chunks/<chunk>.json`` (atomic, after
everything it vouches for: the size of every file it names).  When all chunks of a video are
in, the pieces are joined into ``overlay.mp4``, ``summary.json`` (:mod:`bmvseg.output.summary`,
the format of a single run plus the chunking) is written, and ``.chunks/`` is removed.

``--resume`` trusts nothing it cannot check: a finished video is skipped, and a finished chunk
kept, only if every file its summary or marker names is there as a regular file of the size
recorded; anything else is segmented again.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from bmvseg.distributed.chunks import Chunk
from bmvseg.distributed.inputs import VideoInput
from bmvseg.distributed.worker import ChunkResult
from bmvseg.errors import BmvsegError
from bmvseg.output.frames import FrameSink
from bmvseg.output.rundir import RunDir, claim_output_dir
from bmvseg.output.safe import read_regular
from bmvseg.output.summary import FINISHED, brief, state, summarize
from bmvseg.run.options import RunOptions

CHUNK_DIR = ".chunks"  # finished chunks' markers and overlay pieces, removed when complete
# What a marker must hold to be believed (the facts a summary is made of, and the file sizes).
MARKER_KEYS = (
    "start", "end", "frames", "label_bytes", "overlay_bytes", "keyframes", "stream_ended_early",
    "damaged_frames", "concealed_frames", "input_fps", "stream_index", "notices",
    "motion_source", "motion_reason", "width", "height",
)  # fmt: skip


@dataclass
class Video:
    """One video's progress through the job."""

    input: VideoInput
    dir: Path
    state: str = "pending"  # then failed, or a finished state of bmvseg.output.summary
    error: str | None = None
    identity: dict = field(default_factory=dict)
    about: dict = field(default_factory=dict)  # the video's path and size, for the records
    frame_count: int | None = None
    rotation: int = 0
    chunks: list[Chunk] = field(default_factory=list)
    done: dict[str, dict] = field(default_factory=dict)  # chunk key -> that chunk's stats
    resumed: int = 0  # chunks found finished on disk
    frames: int = 0
    summary: dict | None = None
    sink: FrameSink | None = None  # the video's folder, claimed by the ownership rule
    t0: float = 0.0

    def record(self) -> dict:
        return {
            "video": str(self.input.path),
            "name": self.input.name,
            "renamed_from": self.input.stem if self.input.name != self.input.stem else None,
            "output": self.dir.name,
            "state": self.state,
            "error": self.error,
            "summary": brief(self.summary) if self.summary else None,
        }

    def marker(self, c: Chunk) -> str:
        return f"{CHUNK_DIR}/{c.key}.json"

    def piece(self, c: Chunk) -> Path:
        return self.dir / CHUNK_DIR / f"{c.key}.mp4"


def _sizes_hold(folder: Path, sizes: dict[str, int | None]) -> bool:
    """Whether every file named is a regular file of its size (None: any size)."""
    for rel, size in sizes.items():
        try:
            st = os.lstat(folder / rel)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or size not in (None, st.st_size):
            return False
    return True


def _label_sizes(first: int, sizes: list) -> dict[str, int]:
    return {f"labels/{first + i:06d}.png": s for i, s in enumerate(sizes)}


def finished_before(v: Video, overlay: bool) -> dict | None:
    """The summary of ``v`` if an earlier run finished it and every file it names is intact."""
    data = read_regular(v.dir / "summary.json", limit=256 << 20)
    try:
        summary = json.loads(data) if data is not None else None
    except ValueError:
        return None
    if not isinstance(summary, dict) or not summary.get("complete"):
        return None
    if {k: summary.get(k) for k in v.identity} != v.identity:
        return None
    try:
        sizes: dict[str, int | None] = {
            rel: size
            for c in summary["chunking"]["chunks"]
            for rel, size in _label_sizes(c["start"], c["label_bytes"]).items()
        }
    except (KeyError, TypeError):
        return None
    if overlay:
        sizes["overlay.mp4"] = None
    if len(sizes) - overlay != summary.get("frames"):
        return None
    return summary if _sizes_hold(v.dir, sizes) else None


def valid_marker(v: Video, c: Chunk, stats: dict | None, overlay: bool) -> bool:
    """Whether a chunk's marker is one this job would write and its files are all there."""
    if not isinstance(stats, dict) or any(k not in stats for k in MARKER_KEYS):
        return False
    frames, sizes = stats["frames"], stats["label_bytes"]
    if (stats["start"], stats["end"]) != (c.start, c.end) or type(frames) is not int:
        return False
    if not isinstance(sizes, list) or len(sizes) != frames or not all(
        type(s) is int for s in sizes
    ):
        return False
    if c.end is not None and frames > c.end - c.start:
        return False
    files: dict[str, int | None] = _label_sizes(c.start, sizes)
    if overlay and frames:
        if type(stats["overlay_bytes"]) is not int:
            return False  # finished without the overlay piece now wanted
        files[f"{CHUNK_DIR}/{c.key}.mp4"] = stats["overlay_bytes"]
    return _sizes_hold(v.dir, files)


@dataclass
class Records:
    """The job's files: each video's folder (through its sink) and, with several, job.json."""

    out: Path
    videos: list[Video]
    options: RunOptions
    size: int  # chunk length, frames
    single: bool  # one input file: ``out`` is that video's folder, no job.json
    overlay: bool
    info: dict = field(default_factory=dict)  # workers, where they run, start-up times
    root: RunDir | None = None  # several inputs: the job's own folder (job.json)
    earlier: list[dict] = field(default_factory=list)  # resumed job.json's other videos

    def open(self, v: Video, *, resume: bool, overwrite: bool) -> None:
        """The video's output folder, its run.json, and the chunks already finished there."""
        out = claim_output_dir(v.dir, "chunked", v.identity, inputs=[v.input.path],
                               resume=resume, overwrite=overwrite)  # fmt: skip
        out.write_json("run.json", {**v.about, **v.identity})
        v.sink = FrameSink(out, overlay=False)
        if resume:
            for c in v.chunks:
                stats = out.read_json(v.marker(c))
                if valid_marker(v, c, stats, self.overlay):
                    v.done[c.key] = stats
            v.resumed = len(v.done)
        v.t0 = time.perf_counter()

    def store(self, v: Video, res: ChunkResult) -> None:
        """Labels and overlay piece first, then the marker that vouches for them."""
        for i, data in enumerate(res.labels):
            v.sink.write_png(res.first + i, data)
        if res.overlay is not None:
            v.sink.out.write_bytes(v.piece(res.chunk), res.overlay)
        v.sink.out.write_json(v.marker(res.chunk), res.stats)
        v.done[res.chunk.key] = res.stats

    def fail(self, v: Video, error: str) -> None:
        v.state, v.error = "failed", error
        self.write_job()

    def finish(self, v: Video) -> None:
        """All chunks in: check they tile the video, join the overlay, write summary.json."""
        stats = [v.done[c.key] for c in v.chunks]
        ended = False
        for c, st in zip(v.chunks, stats, strict=True):
            if ended and st["frames"]:
                self.fail(v, f"frames {c.key} decoded after the stream ended earlier in another "
                          "chunk (non-deterministic decode?)")  # fmt: skip
                return
            if c.end is None or st["frames"] < c.end - c.start:
                ended = True
        frames = sum(st["frames"] for st in stats)
        if frames == 0:
            self.fail(v, f"{v.input.path}: no frame could be decoded")
            return
        if self.overlay:
            done = [(c, st) for c, st in zip(v.chunks, stats, strict=True) if st["frames"]]
            t0 = done[0][1].get("first_time")
            times = [st.get("first_time") for _, st in done]
            starts = None if None in times else [t - t0 for t in times]
            try:
                v.sink.join_overlay([v.piece(c) for c, _ in done], starts)
            except OSError as exc:
                where = v.sink.overlay_path
                raise BmvsegError(f"cannot write {where}: {exc.strerror or exc}") from exc
        chunking = {
            "chunk_frames": self.size,
            "resumed_chunks": v.resumed,
            "chunks": [{k: x for k, x in st.items() if k not in ("keyframes", "classes")}
                       for st in stats],
        }
        summary = summarize(stats, about=v.about, identity=v.identity,
                            wall_s=time.perf_counter() - v.t0, rotation=v.rotation,
                            device=str(self.options.device), command=self.info["command"],
                            job=self.info, chunking=chunking)  # fmt: skip
        v.sink.write_summary(summary)
        self._remove_chunks(v)
        self.finished(v, summary)

    def finished(self, v: Video, summary: dict) -> None:
        v.summary, v.frames = summary, int(summary.get("frames") or 0)
        v.state = state(summary)
        self.write_job()

    def _remove_chunks(self, v: Video) -> None:
        """The chunk state the record names (links and all, never followed), then its folder."""
        chunks = v.dir / CHUNK_DIR
        try:
            with os.scandir(chunks) as it:
                doomed = [e for e in it if v.sink.out.owns(f"{CHUNK_DIR}/{e.name}")
                          and not e.is_dir(follow_symlinks=False)]  # fmt: skip
        except FileNotFoundError:
            return
        for e in doomed:
            os.unlink(e.path)
        try:
            chunks.rmdir()
        except OSError:
            pass  # something of the user's is left in it

    def keep_earlier(self) -> None:
        """On resume, the videos of the job's record that this run was not given stay in it."""
        old = self.root.read_json("job.json") if self.root is not None else None
        names = {v.input.name for v in self.videos}
        entries = old.get("videos") if old else None
        self.earlier = [
            e for e in entries or []
            if isinstance(e, dict) and e.get("name") not in names
            and isinstance(e.get("state"), str)
        ]  # fmt: skip

    def write_job(self) -> None:
        """``out/job.json`` (several inputs only: one input keeps ``bmvseg segment``'s layout)."""
        if self.single or self.root is None:  # claimed once the job starts writing
            return
        videos = [*self.earlier, *(v.record() for v in self.videos)]
        record = {
            "complete": all(v["state"] in FINISHED for v in videos),
            "videos": videos,
            "failed": sum(v["state"] == "failed" for v in videos),
            "ended_early": [v["name"] for v in videos if v["state"] == "ended early"],
            "damaged": [v["name"] for v in videos if v["state"] == "damaged"],
            "options": self.options.identity(),
            "chunk_frames": self.size,
            **self.info,
        }
        self.root.write_json("job.json", record)
