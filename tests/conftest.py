"""Fixtures shared by the tests (helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_train


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory) -> Path:
    """One finished tiny run (8 steps, EMA on), shared by tests that only read a workdir."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    result = run_train(workdir, num_steps=8, ema_decay=0.9)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir
