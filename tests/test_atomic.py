"""Atomic outputs: a failure never leaves a half-written file, nor replaces the last good one."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from jaxgan.atomic import MANIFEST, UMASK, OutputFolder, atomic_path, check_writable, digest


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("last good")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "last good"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_success_replaces_with_usual_permissions(tmp_path):
    with atomic_path(tmp_path / "out.txt") as temporary:
        temporary.write_text("new")
    with atomic_path(tmp_path / "folder", directory=True) as temporary:
        (temporary / "inside.txt").write_text("x")
    assert (tmp_path / "out.txt").read_text() == "new" and (
        tmp_path / "folder" / "inside.txt"
    ).exists()
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~UMASK
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~UMASK


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "x").write_text("keep")
    with pytest.raises(FileExistsError, match="--force"):
        check_writable(tmp_path / "x", force=False)
    assert check_writable(tmp_path / "x", force=True) == tmp_path / "x"


def test_replacing_a_folder_keeps_the_old_one_when_the_rename_fails(tmp_path, monkeypatch):
    old = tmp_path / "folder"
    old.mkdir()
    (old / "inside.txt").write_text("last good")

    def failing_replace(source, target):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk gone"), atomic_path(old, directory=True) as temporary:
        (temporary / "inside.txt").write_text("new")
    assert (old / "inside.txt").read_text() == "last good"  # was deleted before the rename
    assert os.listdir(tmp_path) == ["folder"]
    monkeypatch.undo()
    with atomic_path(old, directory=True) as temporary:
        (temporary / "inside.txt").write_text("new")
    assert (old / "inside.txt").read_text() == "new" and os.listdir(tmp_path) == ["folder"]


def write_job(folder, fail_after=None):
    """Write a folder's pending files as a job would (atomically), raising after `fail_after`
    files."""
    for count, name in enumerate(folder.pending):
        if fail_after is not None and count == fail_after:
            raise RuntimeError("killed")
        with atomic_path(folder.target(name)) as temporary:
            temporary.write_text(f"{folder.job['seed']}:{name}")
        folder.wrote([name])
    return folder.finish()


NAMES = [f"{i:02d}.txt" for i in range(6)] + ["sub/extra.txt"]


def test_an_interrupted_folder_resumes_and_skips_what_is_complete(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="killed"):
        write_job(OutputFolder(out, {"seed": 1}, NAMES), fail_after=3)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "00.txt", "01.txt", "02.txt"]
    (out / ".03.txt.abcd.tmp").write_text("half")  # the temporary of a killed write
    again = OutputFolder(out, {"seed": 1}, NAMES)
    assert again.skipped == 3 and again.pending == NAMES[3:]
    assert again.summary() == f"skipping 3 images already written in {out}; writing 4"
    assert write_job(again) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        NAMES + [MANIFEST]
    )
    assert all((out / name).read_text() == f"1:{name}" for name in NAMES)
    done = OutputFolder(
        out, {"seed": 1}, NAMES, force=True
    )  # the same job, complete: nothing left to write
    assert done.skipped == len(NAMES) and done.pending == []


def test_force_replaces_in_place_and_removes_old_files_only_when_whole(tmp_path):
    out = tmp_path / "out"
    write_job(OutputFolder(out, {"seed": 1}, NAMES))
    new_names = NAMES[:4]  # the new job writes fewer files
    with pytest.raises(RuntimeError, match="killed"):
        write_job(OutputFolder(out, {"seed": 2}, new_names, force=True), fail_after=2)
    assert all((out / name).exists() for name in NAMES)  # nothing of the old output removed yet
    assert [(out / name).read_text()[0] for name in NAMES] == list("2211111")
    # the same job again (with or without --force) resumes: files 0-1 are new, 2-3 (old ones) are
    # rewritten
    resumed = OutputFolder(out, {"seed": 2}, new_names)
    assert resumed.skipped == 2 and resumed.pending == new_names[2:]
    with pytest.raises(RuntimeError, match="killed"):
        write_job(resumed, fail_after=1)
    assert all((out / name).exists() for name in NAMES)
    resumed = OutputFolder(out, {"seed": 2}, new_names, force=True)
    assert resumed.skipped == 3
    assert (
        write_job(resumed) == 3
    )  # the old output's other files, removed once the new one is complete
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        new_names + [MANIFEST]
    )
    assert all((out / name).read_text() == f"2:{name}" for name in new_names)


def test_another_job_or_a_foreign_folder_needs_force(tmp_path):
    out = tmp_path / "out"
    write_job(OutputFolder(out, {"seed": 1, "num": 7}, NAMES))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(
        FileExistsError,
        match=rf"{out} holds the output of a job with other arguments \(seed was 1, "
        r"now 2\).*--force",
    ):
        OutputFolder(out, {"seed": 2, "num": 7}, NAMES)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match=f"no {MANIFEST}"):
        OutputFolder(foreign, {"seed": 1}, NAMES)
    (tmp_path / "a_file").write_text("keep")
    with pytest.raises(FileExistsError, match="is a file"):
        OutputFolder(tmp_path / "a_file", {"seed": 1}, NAMES, force=True)
    assert (tmp_path / "a_file").read_text() == "keep"
    (tmp_path / "empty").mkdir()
    assert (
        write_job(OutputFolder(tmp_path / "empty", {"seed": 1}, NAMES)) == 0
    )  # an empty folder is fine
    OutputFolder(tmp_path / "never", {"seed": 1}, NAMES)
    assert not (tmp_path / "never").exists()  # nothing is made before the first file


def test_digest_tells_contents_apart():
    weights = {"params": {"w": np.ones((2, 3), np.float32), "b": np.zeros(3, np.float32)}}
    assert digest(weights) == digest(
        {"params": {"b": np.zeros(3, np.float32), "w": np.ones((2, 3), np.float32)}}
    )
    assert digest(weights) != digest(
        {"params": {"w": np.ones((2, 3), np.float64), "b": np.zeros(3, np.float32)}}
    )
    assert digest(weights) != digest(
        {"params": {"w": np.ones((3, 2), np.float32), "b": np.zeros(3, np.float32)}}
    )
