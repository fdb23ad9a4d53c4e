"""Atomic outputs: write to a temporary name beside the target, then rename, so a crash leaves no
half file.

Folder outputs (`OutputFolder`) are written file by file, each atomically, under a manifest of the
job that writes them: a rerun of the same job keeps the files already complete and writes the rest,
and replacing another job's output (`force`) overwrites its files in place, removing its leftovers
only once the new output is whole. No step deletes an old output before its replacement is complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = (
    ".jaxgan-output.json"  # inside a folder output: the job that writes it and how far it got
)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = (
    _current_umask()
)  # temporary files are created private (0600); outputs get the usual permissions


def check_writable(path: str | os.PathLike, force: bool) -> Path:
    """Refuse to replace an existing output unless `force`; returns the path."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force (force=True) to overwrite it")
    return path


def _remove(path: Path) -> None:
    shutil.rmtree(
        path, ignore_errors=True
    ) if path.is_dir() and not path.is_symlink() else path.unlink(missing_ok=True)


def _replace(temporary: Path, path: Path, directory: bool) -> None:
    """Rename `temporary` to `path`. A file replaces a file in one rename; a folder cannot, so the
    old one (or a file in its place) is renamed aside and deleted only once the new one is in place:
    a failure keeps it."""
    if not directory or not (path.exists() or path.is_symlink()):
        os.replace(temporary, path)
        return
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old")
    os.rename(path, aside)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.rename(aside, path)
        raise
    _remove(aside)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary file (or folder) path next to `path`; on success it replaces `path` in one
    rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        temporary.chmod(0o777 & ~UMASK)
    else:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        temporary = Path(name)
        temporary.chmod(0o666 & ~UMASK)
    try:
        yield temporary
        _replace(temporary, path, directory)
    except BaseException:
        _remove(temporary)
        raise


def digest(*values: Any) -> str:
    """A short SHA-256 of nested mappings, sequences, arrays and scalars (a model's weights,
    latents), to tell in a job's manifest whether a rerun uses the same inputs as the run that wrote
    the folder."""
    hasher = hashlib.sha256()

    def visit(value: Any) -> None:
        if isinstance(value, Mapping):
            hasher.update(b"{")
            for key in sorted(value, key=str):
                hasher.update(repr(key).encode() + b":")
                visit(value[key])
            hasher.update(b"}")
        elif isinstance(value, (list, tuple)):
            hasher.update(b"[")
            for item in value:
                visit(item)
            hasher.update(b"]")
        elif value is None or isinstance(value, (str, bytes, bool, int, float)):
            hasher.update(repr(value).encode() + b";")
        else:
            array = np.ascontiguousarray(np.asarray(value))
            hasher.update(f"{array.dtype.str}{array.shape}".encode())
            hasher.update(array.tobytes())

    for value in values:
        visit(value)
    return hasher.hexdigest()[:16]


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


class OutputFolder:
    """A folder of files (`names`, relative paths in the order they are written) that one job
    writes, each file atomically, so a failure at the last file keeps every one before it.

    The folder's manifest (MANIFEST) records the job (its arguments, as a JSON-able dict). Into a
    missing or empty folder the job starts afresh; into a folder of the same job it resumes: the
    files already there are complete (each was renamed into place whole) and are skipped. A folder
    of another job, or one without a manifest, is an error unless `force`: then each file is
    replaced in place, and the old output's other files are removed only by `finish`, once the new
    output is whole. While replacing, the manifest counts the leading names written by the new job,
    so a rerun resumes from there without taking an old file for a new one. Nothing is created until
    the first file is written. Not for two processes writing one folder at once.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        job: Mapping[str, Any],
        names: Sequence[str],
        force: bool = False,
    ):
        self.path = Path(path)
        self.job = json.loads(
            json.dumps(dict(job))
        )  # as the manifest stores it: tuples become lists
        self.names = [str(name) for name in names]
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"{self.path}: the job writes some file names twice")
        if self.path.exists() and not self.path.is_dir():
            raise FileExistsError(
                f"{self.path} is a file, not a folder; remove it or choose another output folder "
                "(--force replaces a folder's files one by one and never deletes a whole output)"
            )
        existing = self._files()
        recorded = self._read_manifest()
        if recorded is not None and recorded.get("job") == self.job:  # the same job: resume it
            self.replacing = bool(recorded.get("replacing"))
            trusted = int(recorded.get("done", 0)) if self.replacing else len(self.names)
        elif existing and not force:
            raise FileExistsError(self._mismatch(recorded))
        else:
            self.replacing, trusted = bool(existing), 0
        self.complete = {name for name in self.names[:trusted] if name in existing}
        self.skipped = len(self.complete)
        self._prefix = 0
        self._advance()
        self._started = False

    def _files(self) -> set[str]:
        """The relative paths of the files in the folder now, the manifest aside."""
        if not self.path.is_dir():
            return set()
        found = set()
        for root, _, files in os.walk(self.path):
            for file in files:
                found.add((Path(root) / file).relative_to(self.path).as_posix())
        found.discard(MANIFEST)
        return found

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            recorded = json.loads((self.path / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return recorded if isinstance(recorded, dict) else None

    def _mismatch(self, recorded: dict[str, Any] | None) -> str:
        if recorded is None or not isinstance(recorded.get("job"), dict):
            return (
                f"{self.path} exists and holds files that no jaxgan job recorded (no {MANIFEST}); "
                f"pass --force (force=True) to replace them, or choose another output folder"
            )
        old = recorded["job"]
        differences = "; ".join(
            f"{key} was {old.get(key)!r}, now {self.job.get(key)!r}"
            for key in sorted(set(old) | set(self.job), key=str)
            if old.get(key) != self.job.get(key)
        )
        return (
            f"{self.path} holds the output of a job with other arguments ({differences}); "
            f"rerun with the same arguments to resume it, pass --force (force=True) to replace it, "
            f"or choose another output folder"
        )

    def _write_manifest(self, **state: Any) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path / MANIFEST) as temporary:
            temporary.write_text(
                json.dumps({"format": 1, "job": self.job, **state}, indent=1) + "\n"
            )

    def _advance(self) -> None:
        while self._prefix < len(self.names) and self.names[self._prefix] in self.complete:
            self._prefix += 1

    @property
    def pending(self) -> list[str]:
        """The names still to write, in order."""
        return [name for name in self.names if name not in self.complete]

    def summary(self) -> str:
        """One line for the user: how many files are kept from an earlier run of this job, and how
        many are left."""
        return (
            f"skipping {_plural(self.skipped, 'image')} already written in {self.path}; "
            f"writing {len(self.names) - self.skipped:,}"
        )

    def target(self, name: str) -> Path:
        """Where to write `name` (atomically, e.g. with atomic_path); the folder and its manifest
        are made first."""
        if not self._started:
            self._write_manifest(complete=False, replacing=self.replacing, done=self._prefix)
            self._started = True
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def wrote(self, names: Iterable[str]) -> None:
        """Record files now complete; while replacing an old output, the manifest counts them (call
        once a batch)."""
        self.complete.update(names)
        before = self._prefix
        self._advance()
        if self.replacing and self._prefix != before:
            self._write_manifest(complete=False, replacing=True, done=self._prefix)

    def finish(self) -> int:
        """Once every file is written: remove what the new output does not hold (an old output's
        other files, the temporaries of killed writes) and mark the folder complete. Returns how
        many old files were removed."""
        if self.pending:
            raise RuntimeError(f"{self.path}: {len(self.pending):,} file(s) not written yet")
        keep = set(self.names)
        removed = 0
        for name in sorted(self._files() - keep):
            temporary = Path(name).name.startswith(".") and name.endswith(".tmp")
            if self.replacing or temporary:
                (self.path / name).unlink(missing_ok=True)
                removed += not temporary
        if self.replacing:
            for root, _, _ in sorted(
                os.walk(self.path), key=lambda entry: -len(Path(entry[0]).parts)
            ):
                if Path(root) != self.path and not any(Path(root).iterdir()):
                    Path(root).rmdir()
        self._write_manifest(complete=True, replacing=False, done=len(self.names))
        self.replacing = False
        return removed
