"""bmvseg never destroys what is not its own: the run record, the ownership rule, the input
fingerprint, and ``segment`` refusing directories that are not its output."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from conftest import hang_guard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmvseg.cli.main import main
from bmvseg.data.textures import moving_texture_clip
from bmvseg.errors import BmvsegError
from bmvseg.output import LAYOUTS, RECORD, claim_output_dir, input_fingerprint
from bmvseg.output.fingerprint import SAMPLES, STRETCH
from bmvseg.video.encode import X264_ONE_REF, encode_video

ID = {"video_fingerprint": "fp1:aa", "interval": 5}


def tree(folder: Path) -> dict[str, tuple[int, bytes | str | None]]:
    """Every entry below ``folder``: type and bytes (files) or target (symlinks)."""
    out: dict[str, tuple[int, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            mode = p.lstat().st_mode
            data = (
                p.read_bytes()
                if stat.S_ISREG(mode)
                else os.readlink(p)
                if stat.S_ISLNK(mode)
                else None
            )
            out[str(p.relative_to(folder))] = (stat.S_IFMT(mode), data)
    return out


def fake_run(d: Path, identity: dict = ID, frames: int = 3, **flags) -> None:
    """A run that writes what ``segment`` writes, through the claimed directory."""
    run = claim_output_dir(d, "segment", identity, inputs=[], **flags)
    run.write_json("run.json", identity)
    for i in range(frames):
        run.write_bytes(run.label_path(i), f"label {i}".encode())
    run.write_json("summary.json", {"complete": True})


# -- the rule, case by case ------------------------------------------------------------------


def test_new_or_empty_directory_is_taken_and_the_record_comes_first(tmp_path):
    for d in (tmp_path / "new" / "deeper", tmp_path / "empty"):
        if d.name == "empty":
            d.mkdir()
        run = claim_output_dir(d, "segment", ID)
        assert sorted(os.listdir(d)) == [RECORD, "labels"]
        rec = json.loads((d / RECORD).read_text())
        assert rec["kind"] == "segment" and rec["identity"] == ID
        assert set(rec["files"]) == set(LAYOUTS["segment"].files) and rec["dirs"] == ["labels"]
        with pytest.raises(ValueError, match="not named"):  # a bug: writing outside the record
            run.write_bytes(d / "notes.txt", b"x")


@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_every_kind_writes_its_layout_and_overwrite_takes_it_all_back(tmp_path, kind):
    d = tmp_path / kind
    run = claim_output_dir(d, kind, {"n": 1})
    names = [f.replace("NNNNNN", "000000") for f in LAYOUTS[kind].files]
    for name in names:
        run.write_bytes(d / name, name.encode())
    (d / "mine.txt").write_text("the user's")
    claim_output_dir(d, kind, {"n": 2}, overwrite=True)
    assert sorted(tree(d)) == sorted([RECORD, "mine.txt", *LAYOUTS[kind].dirs])


@pytest.mark.parametrize(
    "flags", [{}, {"overwrite": True}, {"resume": True}, {"overwrite": True, "resume": True}]
)
def test_a_directory_that_is_not_ours_is_refused_whatever_the_flags(tmp_path, flags):
    d = tmp_path / "p"
    (d / "labels").mkdir(parents=True)
    (d / "notes.txt").write_text("notes")
    (d / "summary.json").write_text("{}")
    (d / "labels" / ".partial-000001.png").write_bytes(b"user's")
    before = tree(tmp_path)
    with pytest.raises(BmvsegError, match="no bmvseg run record"):
        claim_output_dir(d, "segment", ID, **flags)
    assert tree(tmp_path) == before


FORGED = {
    "not json": "{not json",
    "a list": "[]",
    "names a user file": {"files": ["summary.json", "notes.txt"]},
    "names a file outside": {"files": ["../outside.txt"]},
    "names an absolute path": {"files": ["/etc/passwd"]},
    "names a wildcard": {"files": ["*"]},
    "names a user dir": {"dirs": ["notes"]},
    "unknown kind": {"kind": "cleanup"},
    "other version": {"version": 2},
    "bool version": {"version": True},
    "other format": {"format": "bmvseg-run "},
    "extra field": {"remove": ["notes.txt"]},
    "identity not a dict": {"identity": "x"},
}


def _record(**change) -> dict:
    rec = {
        "format": "bmvseg-run",
        "version": 1,
        "kind": "segment",
        "identity": ID,
        "files": list(LAYOUTS["segment"].files),
        "dirs": ["labels"],
    }
    return {**rec, **change}


def write_forged(d: Path, which: str) -> None:
    spec = FORGED[which]
    (d / RECORD).write_text(spec if isinstance(spec, str) else json.dumps(_record(**spec)))


@pytest.mark.parametrize("which", [*FORGED, "record is a directory", "record is a symlink"])
def test_an_invalid_record_is_no_proof(tmp_path, which):
    d = tmp_path / "p"
    d.mkdir()
    (d / "notes.txt").write_text("notes")
    (d / "summary.json").write_text("{}")
    if which == "record is a directory":
        (d / RECORD).mkdir()
    elif which == "record is a symlink":  # to a valid record of a run elsewhere
        fake_run(tmp_path / "elsewhere")
        (d / RECORD).symlink_to(tmp_path / "elsewhere" / RECORD)
    else:
        write_forged(d, which)
    before = tree(tmp_path)
    with pytest.raises(BmvsegError, match="invalid bmvseg run record"):
        claim_output_dir(d, "segment", ID, overwrite=True)
    assert tree(tmp_path) == before


def test_overwrite_removes_only_what_the_record_names(tmp_path):
    d = tmp_path / "out"
    fake_run(d, frames=4)
    (d / "labels" / ".partial-000004.png").write_bytes(b"killed mid-write")
    (d / "notes.txt").write_text("notes")
    (d / "labels" / "notes.txt").write_text("notes in labels")
    (d / "sub").mkdir()
    (d / "sub" / "summary.json").write_text("{}")  # our name, not our place
    claim_output_dir(d, "segment", {**ID, "interval": 3}, overwrite=True)
    assert sorted(tree(d)) == sorted(
        [RECORD, "labels", "labels/notes.txt", "notes.txt", "sub", "sub/summary.json"]
    )
    assert json.loads((d / RECORD).read_text())["dirs"] == []  # labels/ is the user's now

    # a directory bmvseg did not make is never removed, even once empty
    (d / "labels" / "notes.txt").unlink()
    fake_run(d, overwrite=True)
    claim_output_dir(d, "segment", ID, overwrite=True)
    assert json.loads((d / RECORD).read_text())["dirs"] == []
    assert sorted(tree(d)) == sorted([RECORD, "labels", "notes.txt", "sub", "sub/summary.json"])

    # one it made is removed when empty, then made again
    fresh = tmp_path / "fresh"
    fake_run(fresh)
    claim_output_dir(fresh, "segment", ID, overwrite=True)
    assert json.loads((fresh / RECORD).read_text())["dirs"] == ["labels"]
    assert sorted(tree(fresh)) == [RECORD, "labels"]


def test_resume_needs_the_same_run_then_removes_only_its_strays_and_summary(tmp_path):
    d = tmp_path / "out"
    fake_run(d, frames=4)
    (d / "labels" / ".partial-000004.png").write_bytes(b"killed mid-write")
    (d / ".partial-overlay.mp4").write_bytes(b"killed mid-write")
    (d / "sub").mkdir()
    (d / "sub" / ".partial-x").write_bytes(b"the user's")
    (d / ".partial-notes").write_bytes(b"the user's")
    before = tree(tmp_path)
    with pytest.raises(BmvsegError, match=r"different run \(interval differ"):
        claim_output_dir(d, "segment", {**ID, "interval": 3}, resume=True)
    assert tree(tmp_path) == before
    run = claim_output_dir(d, "segment", ID, resume=True)
    assert run.done_prefix() == 4
    gone = {"summary.json", "labels/.partial-000004.png", ".partial-overlay.mp4"}
    assert set(before) - set(tree(tmp_path)) == {f"out/{g}" for g in gone}


def test_another_command_never_replaces_a_run_of_another_kind(tmp_path):
    d = tmp_path / "out"
    fake_run(d)
    before = tree(tmp_path)
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(BmvsegError, match="'bmvseg segment'"):
            claim_output_dir(d, "benchmark", {"clips": ["a"]}, **flags)
    assert tree(tmp_path) == before


def test_current_directory_its_parents_and_input_holders_are_refused(tmp_path, monkeypatch):
    here = tmp_path / "a" / "b"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    for target in (Path("."), here, tmp_path / "a", Path("..")):
        with pytest.raises(BmvsegError, match="current directory"):
            claim_output_dir(target, "segment", ID, overwrite=True)
    clip = tmp_path / "out" / "deep" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"video")
    with pytest.raises(BmvsegError, match="contains the input"):
        claim_output_dir(tmp_path / "out", "segment", ID, inputs=[clip], overwrite=True)
    with pytest.raises(BmvsegError, match="not a directory"):
        claim_output_dir(clip, "segment", ID, inputs=[clip], overwrite=True)
    assert clip.read_bytes() == b"video" and sorted(os.listdir(here)) == []


def test_a_symlinked_labels_dir_is_not_followed(tmp_path):
    d, user = tmp_path / "out", tmp_path / "photos"
    fake_run(d)
    user.mkdir()
    (user / "000000.png").write_bytes(b"a photo")
    for f in (d / "labels").iterdir():
        f.unlink()
    (d / "labels").rmdir()
    (d / "labels").symlink_to(user)
    before = tree(tmp_path)
    for flags in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(BmvsegError, match="not a directory bmvseg made"):
            claim_output_dir(d, "segment", ID, **flags)
    assert tree(tmp_path) == before


# -- the property ----------------------------------------------------------------------------

FOREIGN = [  # names bmvseg never writes
    "notes.txt",
    ".hidden",
    "labels/notes.txt",
    "sub/deep/x.txt",
    "sub/.partial-x",
    "sub/summary.json",
    "labels/sub/000001.png",
]
COLLIDING = [  # bmvseg's own names: the user's only where no record names them
    "summary.json",
    "run.json",
    "overlay.mp4",
    "labels/000000.png",
    "labels/000007.png",
    ".partial-summary.json",
    "labels/.partial-000002.png",
]


PLANTED_AT = [  # every name a segment run writes, final and temporary
    "summary.json",
    "run.json",
    "overlay.mp4",
    "labels/000000.png",
    "labels/000001.png",
    ".partial-summary.json",
    ".partial-run.json",
    ".partial-overlay.mp4",
    f".partial-{RECORD}",
    "labels/.partial-000000.png",
    "labels/.partial-000001.png",
]
PLANTS = ["symlink", "fifo", "hardlink"]


def plant(d: Path, rel: str, how: str, target: Path) -> None:
    """A symlink or hard link to ``target`` (outside the folder), or a FIFO, at ``d/rel``."""
    p = d / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if p.exists() or p.is_symlink():
        p.unlink()
    if how == "symlink":
        p.symlink_to(target)
    elif how == "fifo":
        os.mkfifo(p)
    else:
        os.link(target, p)


def _ours(rel: str) -> bool:
    from bmvseg.output.rundir import RunDir

    return RunDir(Path("."), "segment", LAYOUTS["segment"].files).owns(rel)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    record=st.one_of(st.just("ours"), st.sampled_from(["none", *FORGED])),
    foreign=st.sets(st.sampled_from(FOREIGN), max_size=4),
    colliding=st.sets(st.sampled_from(COLLIDING), max_size=3),
    input_at=st.sampled_from([None, None, None, "clip.mp4", "sub/clip.mp4", "labels/clip.mp4"]),
    stray=st.booleans(),
    same=st.booleans(),
    overwrite=st.booleans(),
    resume=st.booleans(),
    planted=st.dictionaries(st.sampled_from(PLANTED_AT), st.sampled_from(PLANTS), max_size=6),
)
def test_overwrite_and_resume_never_remove_a_file_bmvseg_did_not_write(
    record, foreign, colliding, input_at, stray, same, overwrite, resume, planted
):
    """... nor change anything outside the folder, whatever links or FIFOs were planted at the
    names bmvseg writes, and never hang on one."""
    user = foreign | colliding
    with tempfile.TemporaryDirectory() as tmp, hang_guard(30, "on a planted FIFO"):
        d = Path(tmp) / "out"
        d.mkdir()
        outside = Path(tmp) / "outside"
        outside.mkdir()
        (outside / "precious.txt").write_text("the user's, elsewhere")
        if record == "ours":  # an earlier run, maybe killed mid-write
            fake_run(d, frames=3)
            if stray:
                (d / "labels" / ".partial-000003.png").write_bytes(b"torn")
            user = foreign  # the record names the colliding ones: they are ours
        elif record != "none":
            write_forged(d, record)
        for rel in user:
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(f"the user's {rel}")
        inputs = []
        if input_at:
            clip = d / input_at
            clip.parent.mkdir(parents=True, exist_ok=True)
            clip.write_bytes(b"the input")
            inputs.append(clip)
        else:
            inputs.append(Path(tmp) / "clip.mp4")
            inputs[0].write_bytes(b"the input")
        for rel, how in planted.items():
            if (d / rel).parent.is_symlink():
                continue
            plant(d, rel, how, outside / "precious.txt")
        theirs = {
            k: v for k, v in tree(d).items() if stat.S_ISREG(v[0]) and not _written(k, record)
            and k not in planted  # a hard link at our name: its other name is checked outside
        }  # fmt: skip
        before = tree(Path(tmp))
        before_outside = tree(outside)
        identity = ID if same else {**ID, "video_fingerprint": "fp1:bb"}

        refused = (
            bool(os.listdir(d)) and record != "ours"
            or input_at is not None
            or (record == "ours" and not (resume or overwrite))
            or (record == "ours" and resume and not same)
        )  # fmt: skip
        try:
            run = claim_output_dir(d, "segment", identity, inputs=inputs, resume=resume,
                                   overwrite=overwrite)  # fmt: skip
        except BmvsegError:
            assert refused
            assert tree(Path(tmp)) == before  # a refusal touches nothing
            return
        assert not refused
        run.write_json("run.json", identity)  # the run goes on: every name it writes
        for i in range(2):
            run.write_bytes(run.label_path(i), b"new")
        run.write_bytes(d / "overlay.mp4", b"overlay")
        run.write_json("summary.json", {"complete": True})
        assert tree(outside) == before_outside  # nothing outside changed, links or not
        for rel in ("run.json", "labels/000000.png", "labels/000001.png", "overlay.mp4",
                    "summary.json", RECORD):  # fmt: skip
            st_ = os.lstat(d / rel)
            assert stat.S_ISREG(st_.st_mode) and st_.st_nlink == 1, rel
        assert run.label_path(1).read_bytes() == b"new"
        after = tree(d)
        for rel, entry in theirs.items():
            assert after.get(rel) == entry, rel
        if record == "ours" and resume:  # resume keeps the labels of the earlier run
            assert after["labels/000002.png"][1] == b"label 2"
            assert not (d / "labels" / ".partial-000003.png").exists()


def test_the_property_names_are_what_they_claim():
    assert not any(map(_ours, FOREIGN)) and all(map(_ours, COLLIDING + PLANTED_AT))


def _written(rel: str, record: str) -> bool:
    """Files the earlier fake run wrote (only when the record is really ours)."""
    return record == "ours" and _ours(rel)


# -- the input's fingerprint -----------------------------------------------------------------


def test_fingerprint_is_content_not_name_and_sees_every_sampled_place(tmp_path):
    big = (SAMPLES + 4) * STRETCH
    data = bytearray(os.urandom(big))
    a, b = tmp_path / "a.mp4", tmp_path / "b" / "renamed.mkv"
    b.parent.mkdir()
    a.write_bytes(data)
    b.write_bytes(data)
    fp = input_fingerprint(a)
    assert fp == input_fingerprint(b) and fp.startswith("fp1:")
    # the header, the tail, and the middle of every sampled stretch
    places = [0, big - 1, *(big * i // (SAMPLES + 1) for i in range(1, SAMPLES + 1))]
    for at in places:
        changed = bytearray(data)
        changed[at] ^= 0xA5
        b.write_bytes(changed)
        assert input_fingerprint(b) != fp, at
    b.write_bytes(data + b"\0")  # one byte longer: another file
    assert input_fingerprint(b) != fp


def test_small_files_are_hashed_whole(tmp_path):
    data = bytearray(os.urandom(3 * STRETCH + 7))
    a = tmp_path / "a.mp4"
    a.write_bytes(data)
    fp = input_fingerprint(a)
    for at in range(0, len(data), STRETCH // 3):
        changed = bytearray(data)
        changed[at] ^= 1
        a.write_bytes(changed)
        assert input_fingerprint(a) != fp, at


def test_fingerprint_refuses_what_it_cannot_read_without_blocking(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: open() would block forever
    for p in (fifo, tmp_path, tmp_path / "missing"):
        with pytest.raises(BmvsegError, match=str(p.name)):
            input_fingerprint(p)


# -- real runs of the command ----------------------------------------------------------------

H, W, N = 48, 64, 6


def _clip(path: Path, seed: int) -> Path:
    frames = moving_texture_clip("object", H, W, N, seed=seed)[0]
    encode_video(frames, path, options=X264_ONE_REF)
    return path


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _segment(video: Path, out: Path | str, *extra: str) -> int:
    argv = ["segment", str(video), "-o", str(out), "--weights", "none", "--no-overlay", *extra]
    return main(argv)


def test_segment_into_the_inputs_folder_or_the_current_one_is_refused(
    tmp_path, monkeypatch, capsys
):
    p = tmp_path / "p"
    p.mkdir()
    clip = _clip(p / "clip.mp4", 1)
    (p / "notes.txt").write_text("notes")
    before = tree(tmp_path)
    assert _segment(clip, p, "--overwrite") != 0
    assert "contains the input" in _one_line(capsys.readouterr().err)
    assert tree(tmp_path) == before
    monkeypatch.chdir(p)
    assert _segment(clip, ".", "--overwrite") != 0
    assert "current directory" in _one_line(capsys.readouterr().err)
    assert tree(tmp_path) == before

    other = tmp_path / "other"  # not a bmvseg run: resume must not clean it up
    other.mkdir()
    (other / "summary.json").write_text('{"mine": true}')
    (other / ".partial-draft").write_text("mine")
    before = tree(tmp_path)
    assert _segment(clip, other, "--resume") != 0
    assert "no bmvseg run record" in _one_line(capsys.readouterr().err)
    assert tree(tmp_path) == before


def test_resume_with_another_clip_of_the_same_size_is_refused(tmp_path, capsys):
    a, b = _clip(tmp_path / "a.mp4", 1), _clip(tmp_path / "b.mp4", 2)
    size = max(a.stat().st_size, b.stat().st_size)
    for v in (a, b):  # same size: trailing zero bytes after the last box
        v.write_bytes(v.read_bytes().ljust(size, b"\0"))
    video = tmp_path / "clip.mp4"
    video.write_bytes(a.read_bytes())
    out = tmp_path / "out"
    assert _segment(video, out) == 0
    before = tree(out)
    video.write_bytes(b.read_bytes())  # same path, same size, another clip
    capsys.readouterr()
    assert _segment(video, out, "--resume") != 0
    line = _one_line(capsys.readouterr().err)
    assert "different run" in line and "video_fingerprint" in line, line
    assert tree(out) == before
    video.write_bytes(a.read_bytes())
    assert _segment(video, out, "--resume") == 0  # the same clip resumes
    assert json.loads((out / "summary.json").read_text())["frames"] == N


@pytest.mark.parametrize("flags", [(), ("--overwrite",)])
def test_benchmark_never_replaces_a_segment_output(tmp_path, capsys, flags):
    video = _clip(tmp_path / "clip.mp4", 1)
    out = tmp_path / "out"
    assert _segment(video, out) == 0
    before = tree(out)
    capsys.readouterr()
    argv = ["benchmark", str(video), "--reference", "per-frame", "-o", str(out), "--weights",
            "none", "--intervals", "1", "--no-throughput", "--max-frames", "4", *flags]  # fmt: skip
    assert main(argv) != 0
    assert "'bmvseg segment'" in _one_line(capsys.readouterr().err)
    assert tree(out) == before  # summary.json, complete flag and all


# -- planted links and FIFOs in a real output (issue 21, items 4 and 5) -------------------------


@pytest.mark.parametrize("how", PLANTS)
@pytest.mark.parametrize("flag", ["--overwrite", "--resume"])
def test_links_and_fifos_planted_in_a_real_output_are_never_written_through(
    tmp_path, weights, how, flag, capsys
):
    """At every temporary and final name a run writes: the run completes (or refuses in one
    line), never hangs, never changes a file outside its folder, and its files are its own."""
    video = _clip(tmp_path / "clip.mp4", 1)
    out = tmp_path / "out"
    argv = ["segment", str(video), "-o", str(out), "--weights", str(weights), "-k", "3"]
    assert main(argv) == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("the user's, elsewhere")
    for rel in PLANTED_AT:
        plant(out, rel, how, outside / "precious.txt")
    before = tree(outside)
    capsys.readouterr()
    with hang_guard(120, "on a planted FIFO"):
        rc = main([*argv, flag])
    assert tree(outside) == before
    assert rc == 0, capsys.readouterr().err
    for rel in ["summary.json", "run.json", "overlay.mp4", RECORD,
                *(f"labels/{i:06d}.png" for i in range(N))]:  # fmt: skip
        st_ = os.lstat(out / rel)
        assert stat.S_ISREG(st_.st_mode) and st_.st_nlink == 1, rel
    assert json.loads((out / "summary.json").read_text())["frames"] == N
