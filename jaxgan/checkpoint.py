"""Checkpoints with orbax: training states in a workdir, and single models (what the converter writes).

orbax writes each checkpoint into a temporary folder and renames it when complete, so a checkpoint cut
off by a kill is never listed nor loaded. A workdir holds `run.json` (resolved config, versions, git
commit, checkpoint format version, the data's fingerprint and the history of training segments),
`checkpoints/STEP/`, `samples/` and `tensorboard/`.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgan import config as config_lib
from jaxgan.atomic import atomic_path, check_writable

FORMAT_VERSION = 1
RUN_FILE, MODEL_FILE = "run.json", "model.json"
PACKAGES = ("jaxgan", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "torch")


class CheckpointError(ValueError):
    """A checkpoint or workdir that cannot be used as asked; the message names the path."""


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=5)
        return result.stdout.strip() or None if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _check_format(info: dict, path: Path) -> None:
    version = info.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {version}, but this jaxgan reads version "
                              f"{FORMAT_VERSION}; use the jaxgan release that wrote it (see 'versions' in the file)")


def write_run_info(workdir: str | os.PathLike, config: config_lib.Config, extra: dict | None = None) -> None:
    """Record the resolved config, package versions, git commit and format version (atomically)."""
    info = {"format_version": FORMAT_VERSION, "config": config.to_dict(), "versions": _versions(),
            "git_commit": _git_commit(), **(extra or {})}
    with atomic_path(Path(workdir) / RUN_FILE) as temporary:
        temporary.write_text(json.dumps(info, indent=2, sort_keys=True))


def start_segment(workdir: str | os.PathLike, config: config_lib.Config, start_step: int, layout: str,
                  data: dict | None = None) -> None:
    """Record in run.json the config, the data's fingerprint and one more training segment (from
    `start_step`: versions, git commit, device layout, start time), keeping the history of earlier ones."""
    path = Path(workdir) / RUN_FILE
    old = json.loads(path.read_text()) if path.is_file() else {}
    segments = old.get("segments")
    if segments is None and old:  # written before segments were recorded: its versions are the first segment's
        segments = [{"start_step": 0, "end_step": None, "versions": old.get("versions"),
                     "git_commit": old.get("git_commit")}]
    segment = {"start_step": start_step, "end_step": start_step, "versions": _versions(), "git_commit": _git_commit(),
               "layout": layout, "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    kept = {k: v for k, v in old.items() if k not in ("format_version", "config", "versions", "git_commit")}
    write_run_info(workdir, config, {**kept, "segments": (segments or []) + [segment],
                                     **({"data": data} if data is not None else {})})


def latest_finished_step(workdir: str | os.PathLike) -> int:
    """The latest completely written checkpoint's step in a workdir, 0 when none (orbax names a checkpoint's
    folder by its step only once it is complete)."""
    directory = Path(workdir) / "checkpoints"
    return max((int(p.name) for p in directory.iterdir() if p.name.isdigit()), default=0) if directory.is_dir() else 0


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
    _check_format(info, path)
    info["config"] = config_lib.from_dict(info["config"], source=str(path))
    return info


def is_workdir(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_FILE).is_file()


class Checkpoints:
    """The training checkpoints of a workdir: asynchronous saves, the last `keep` kept."""

    def __init__(self, workdir: str | os.PathLike, keep: int = 3, async_save: bool = True):
        self.directory = Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save,
                                               create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        meta = {"format_version": FORMAT_VERSION, "step": int(step), **meta}
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                        meta=ocp.args.JsonSave(meta)), force=True)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        """The state at `step`, placed as `abstract_state`'s shardings say (any device count)."""
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        _check_format(restored.meta, self.directory / str(step))
        return restored.state, restored.meta

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Shape/dtype structs of `tree` (arrays or structs) placed with `sharding`, as a restore target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def save_model(directory: str | os.PathLike, arch: dict[str, Any], variables: Any, force: bool = False,
               notes: dict | None = None) -> Path:
    """One model's Flax variables (params, batch_stats) and architecture, as an orbax checkpoint folder."""
    directory = check_writable(directory, force)
    with atomic_path(directory, directory=True) as temporary:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(temporary.absolute() / "variables", variables)
        checkpointer.wait_until_finished()
        info = {"format_version": FORMAT_VERSION, "arch": dict(arch), "versions": _versions(), **(notes or {})}
        (temporary / MODEL_FILE).write_text(json.dumps(info, indent=2))
    return directory


def load_model(directory: str | os.PathLike) -> tuple[dict[str, Any], Any]:
    """(arch, variables as numpy arrays) from a folder written by `save_model`."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a jaxgan model folder (no {MODEL_FILE}) nor a training workdir "
                              f"(no {RUN_FILE})")
    info = json.loads(path.read_text())
    _check_format(info, path)
    checkpointer = ocp.StandardCheckpointer()
    variables = checkpointer.restore(directory.absolute() / "variables")
    return info["arch"], jax.tree.map(lambda x: jax.device_get(x), variables)
