"""Atomic outputs: a failure never leaves a half-written file, nor replaces the last good one."""

from __future__ import annotations

import os
import stat

import pytest

from jaxgan.atomic import UMASK, atomic_path, check_writable


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
    assert (tmp_path / "out.txt").read_text() == "new" and (tmp_path / "folder" / "inside.txt").exists()
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o666 & ~UMASK
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~UMASK


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "x").write_text("keep")
    with pytest.raises(FileExistsError, match="--force"):
        check_writable(tmp_path / "x", force=False)
    assert check_writable(tmp_path / "x", force=True) == tmp_path / "x"
