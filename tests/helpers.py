"""Shared helpers for the tests: tiny configs and training subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from jaxgan.config import Config

ROOT = Path(__file__).resolve().parent.parent
# A dcgan32 small enough to train in seconds on 2 cores; the digits are 1-channel.
TINY = dict(
    data="digits",
    image_size=32,
    nc=1,
    nz=16,
    ngf=8,
    ndf=8,
    batch_size=16,
    log_every=2,
    sample_every=4,
    checkpoint_every=4,
    num_samples=16,
    loader_threads=2,
    eval_every=0,
)


def tiny_config(**changes) -> Config:
    return Config(**{**TINY, **changes})


def overrides(**changes) -> list[str]:
    return [f"--config.{k}={v}" for k, v in {**TINY, **changes}.items()]


def train_command(workdir: Path, config: str = "dcgan32", **changes) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--config",
        config,
        "--workdir",
        str(workdir),
        *overrides(**changes),
    ]


def run_train(
    workdir: Path, config: str = "dcgan32", timeout: float = 600, **changes
) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(workdir, config, **changes),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def final_arrays(workdir: Path, step: int | None = None) -> dict[str, np.ndarray]:
    """Every array of a workdir's checkpoint, flattened by path (for exact comparisons)."""
    import jax

    from jaxgan.loading import restore_training_state

    _, state, _ = restore_training_state(workdir, step)
    return {
        jax.tree_util.keystr(path): np.asarray(leaf)
        for path, leaf in jax.tree_util.tree_leaves_with_path(state)
    }


def assert_same_final_arrays(reference: Path, workdir: Path, step: int | None = None) -> None:
    """Two workdirs' checkpoints (the latest, or `step`) hold the same arrays, bit for bit."""
    expected, got = final_arrays(reference, step), final_arrays(workdir, step)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
