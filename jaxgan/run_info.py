"""A workdir's record, `run.json`: the resolved config, package versions, git commit, checkpoint
format version, the data's fingerprint and the history of training segments.

A workdir holds `run.json`, `checkpoints/STEP/` (`jaxgan.checkpoint`), `samples/` and
`tensorboard/`.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

from jaxgan import config as config_lib
from jaxgan.atomic import atomic_path
from jaxgan.checkpoint import FORMAT_VERSION, check_format

RUN_FILE = "run.json"
PACKAGES = ("jaxgan", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "torch")


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return result.stdout.strip() or None if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_run_info(
    workdir: str | os.PathLike, config: config_lib.Config, extra: dict | None = None
) -> None:
    """Record the resolved config, package versions, git commit and format version (atomically)."""
    info = {
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "versions": versions(),
        "git_commit": _git_commit(),
        **(extra or {}),
    }
    with atomic_path(Path(workdir) / RUN_FILE) as temporary:
        temporary.write_text(json.dumps(info, indent=2, sort_keys=True))


def start_segment(
    workdir: str | os.PathLike,
    config: config_lib.Config,
    start_step: int,
    layout: str,
    data: dict | None = None,
) -> None:
    """Record in run.json the config, the data's fingerprint and one more training segment (from
    `start_step`: versions, git commit, device layout, start time), keeping the history of earlier
    ones."""
    path = Path(workdir) / RUN_FILE
    old = json.loads(path.read_text()) if path.is_file() else {}
    segments = old.get("segments")
    if (
        segments is None and old
    ):  # written before segments were recorded: its versions are the first segment's
        segments = [
            {
                "start_step": 0,
                "end_step": None,
                "versions": old.get("versions"),
                "git_commit": old.get("git_commit"),
            }
        ]
    segment = {
        "start_step": start_step,
        "end_step": start_step,
        "versions": versions(),
        "git_commit": _git_commit(),
        "layout": layout,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    kept = {
        k: v
        for k, v in old.items()
        if k not in ("format_version", "config", "versions", "git_commit")
    }
    write_run_info(
        workdir,
        config,
        {
            **kept,
            "segments": (segments or []) + [segment],
            **({"data": data} if data is not None else {}),
        },
    )


def latest_finished_step(workdir: str | os.PathLike) -> int:
    """The latest completely written checkpoint's step in a workdir, 0 when none (orbax names a
    checkpoint's folder by its step only once it is complete)."""
    directory = Path(workdir) / "checkpoints"
    return (
        max((int(p.name) for p in directory.iterdir() if p.name.isdigit()), default=0)
        if directory.is_dir()
        else 0
    )


def end_segment(workdir: str | os.PathLike, step: int) -> None:
    """The current segment has reached `step` (a checkpoint was written there)."""
    path = Path(workdir) / RUN_FILE
    info = json.loads(path.read_text())
    info["segments"][-1]["end_step"] = int(step)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(info, indent=2, sort_keys=True))


def read_run_info(workdir: str | os.PathLike) -> dict | None:
    path = Path(workdir) / RUN_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    check_format(info, path)
    info["config"] = config_lib.from_dict(info["config"], source=str(path))
    return info


def is_workdir(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_FILE).is_file()
