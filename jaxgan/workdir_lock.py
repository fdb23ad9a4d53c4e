"""One run per workdir: an exclusive lock held by process 0 while it trains there.

The lock is `flock` on `WORKDIR/.lock`, which the kernel releases when the process ends in any way,
so a killed run leaves no stale lock. The file names the holder (host, pid) for the error message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

LOCK_FILE = ".lock"


class WorkdirBusyError(RuntimeError):
    """Another run holds the workdir's lock; the message names the workdir and the holder."""


class WorkdirLock:
    """Context manager: hold the workdir's lock (when `enabled`: process 0 of a run) or fail at
    once."""

    def __init__(self, workdir: str | os.PathLike, enabled: bool = True):
        self.path, self.enabled, self.handle = Path(workdir) / LOCK_FILE, enabled, None

    def __enter__(self) -> WorkdirLock:
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe(handle.read())
            handle.close()
            raise WorkdirBusyError(
                f"{self.path.parent} is in use by another run ({holder}); wait for it to "
                "finish or stop it, or give this run another --workdir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None


def _describe(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']} on host {holder['host']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not written its name yet"
