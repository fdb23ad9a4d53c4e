"""Single-model folders (what the converter writes): a model's Flax variables as an orbax checkpoint
and `model.json` with its architecture record."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxgan.atomic import atomic_path, check_writable
from jaxgan.checkpoint import FORMAT_VERSION, CheckpointError, check_format
from jaxgan.run_info import RUN_FILE, versions

MODEL_FILE = "model.json"


def save_model(
    directory: str | os.PathLike,
    arch: dict[str, Any],
    variables: Any,
    force: bool = False,
    notes: dict | None = None,
) -> Path:
    """One model's Flax variables (params, batch_stats) and architecture, as an orbax checkpoint
    folder."""
    directory = check_writable(directory, force)
    with atomic_path(directory, directory=True) as temporary:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(temporary.absolute() / "variables", variables)
        checkpointer.wait_until_finished()
        info = {
            "format_version": FORMAT_VERSION,
            "arch": dict(arch),
            "versions": versions(),
            **(notes or {}),
        }
        (temporary / MODEL_FILE).write_text(json.dumps(info, indent=2))
    return directory


def load_model(directory: str | os.PathLike) -> tuple[dict[str, Any], Any]:
    """(arch, variables as numpy arrays) from a folder written by `save_model`."""
    directory = Path(directory)
    path = directory / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{directory}: not a jaxgan model folder (no {MODEL_FILE}) nor a training workdir "
            f"(no {RUN_FILE})"
        )
    info = json.loads(path.read_text())
    check_format(info, path)
    checkpointer = ocp.StandardCheckpointer()
    variables = checkpointer.restore(directory.absolute() / "variables")
    return info["arch"], jax.tree.map(lambda x: jax.device_get(x), variables)
