"""Sweeps over the GAN toolkit: penalty weights are per-run arrays, and a sweep of a WGAN-GP,
n_critic, class-conditional run (labels, critic batches and mixes stacked per run) equals its single
runs in float64 (within 1e-9 of each tensor's largest magnitude, as tests/test_sweep.py asks)."""

from __future__ import annotations

import jax
import pytest

from jaxgan import sweep_train, trainer
from jaxgan.sweep import SweepError, SweepSpec
from tests.helpers import final_arrays, tiny_config
from tests.test_sweep import assert_close

BASE = dict(
    data="digits",
    dtype="float64",
    batch_size=8,
    num_samples=10,
    num_steps=2,
    checkpoint_every=2,
    sample_every=100,
    loss="wasserstein",
    gradient_penalty=10.0,
    n_critic=2,
    r1_gamma=1.0,
    num_classes=10,
)
RUNS = ({"seed": 0}, {"seed": 1, "r1_gamma": 0.5, "gradient_penalty": 5.0})


def test_a_toolkit_sweep_over_penalty_weights_equals_its_single_runs(tmp_path):
    base = tiny_config(**BASE)
    spec = SweepSpec(RUNS)
    with jax.enable_x64(True):
        sweep_train.train_sweep(base, spec, tmp_path / "sweep")
        trainer.train(spec.configs(base)[1], tmp_path / "single")
        swept = final_arrays(tmp_path / "sweep" / spec.names()[1])
        assert_close(swept, final_arrays(tmp_path / "single"), 1e-9)
    assert float(swept[".settings['r1_gamma']"]) == 0.5
    assert float(swept[".settings['gradient_penalty']"]) == 5.0


@pytest.mark.parametrize("name", ["r1_gamma", "gradient_penalty"])
def test_a_penalty_the_base_config_does_not_compute_cannot_be_swept(name):
    base = tiny_config(**{**BASE, name: 0.0})
    with pytest.raises(SweepError, match=f"sets {name} but the base config's is 0"):
        SweepSpec(({"seed": 0}, {"seed": 1, name: 2.0})).configs(base)
