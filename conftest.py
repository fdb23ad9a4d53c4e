"""Test-wide settings: JAX's persistent compilation cache, shared by pytest-xdist workers and
subprocesses."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(__file__).parent / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")


@pytest.fixture(autouse=True)
def _no_x64_leak():
    """A float64 run in-process turns on JAX's 64-bit mode globally (as a float64 training run
    must); turn it off again so that the next test in this worker runs with JAX's defaults."""
    yield
    import jax

    if jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", False)
