"""WGAN-GP with n_critic D updates a step: each step reads n_critic batches (the data position
counts batches), its draws are keyed by the batch, and checkpoints and resume carry the position."""

from __future__ import annotations

import numpy as np
import pytest

from jaxgan import checkpoint, trainer
from jaxgan.config import ConfigError
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import make_source
from jaxgan.tasks import get_task
from tests.helpers import assert_same_final_arrays, tiny_config

CRITIC = dict(loss="wasserstein", gradient_penalty=10.0, n_critic=2, discriminator_batchnorm=False)


def make_batches(config, batches_per_step: int) -> Batches:
    return Batches(
        make_source(config),
        config.batch_size,
        config.resolved_data_seed,
        latent_seed=config.seed,
        **{
            **get_task("gan").batch_options(config),
            "batches_per_step": batches_per_step,
        },
    )


def test_a_step_reads_n_consecutive_batches_rows_first():
    config = tiny_config(**CRITIC, augment="translation")
    batches = make_batches(config, 3)
    step = batches.batch(5)
    for key, value in step.items():
        assert value.shape[:2] == (config.batch_size, 3), key
        for index in range(3):  # global batches 15, 16, 17, keyed by their own index
            np.testing.assert_array_equal(value[:, index], batches.global_batch(15 + index)[key])
    assert set(step) == {"images", "latents", "augment", "penalty_mix"}
    mix = step["penalty_mix"]
    assert np.all((0 <= mix) & (mix < 1)) and np.unique(mix).size == mix.size
    # One batch a step keeps the plain layout, the step's index keying everything.
    plain = make_batches(tiny_config(), 1).batch(16)
    assert plain["images"].shape[0] == 16 and "penalty_mix" not in plain
    np.testing.assert_array_equal(plain["latents"], batches.global_batch(16)["latents"])


def test_resume_is_bit_for_bit_and_checkpoints_count_batches(tmp_path):
    config = tiny_config(**CRITIC, num_steps=4, checkpoint_every=2, sample_every=100)
    state = trainer.train(config, tmp_path / "reference")
    trainer.train(config.replace(num_steps=2), tmp_path / "resumed")
    trainer.train(config, tmp_path / "resumed")
    assert_same_final_arrays(tmp_path / "reference", tmp_path / "resumed")
    counts = {
        role: int(model.opt_state.inner_state[0].count) for role, model in state.models.items()
    }
    assert counts == {"generator": 4, "discriminator": 8}  # n_critic D updates a step
    assert checkpoint.Checkpoints(tmp_path / "resumed").meta(4)["data_position"] == 8


def test_a_checkpoint_whose_data_position_disagrees_is_refused(tmp_path):
    from jaxgan import sharding
    from jaxgan.loading import restore_state

    config = tiny_config(**CRITIC, num_steps=2, checkpoint_every=2, sample_every=100)
    trainer.train(config, tmp_path / "run")
    checkpoints = checkpoint.Checkpoints(tmp_path / "run")
    placed = sharding.replicated(sharding.make_mesh())
    with pytest.raises(checkpoint.CheckpointError, match="data position 4, not 6"):
        restore_state(checkpoints, 2, config.replace(n_critic=3), placed)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(n_critic=0), "'n_critic' must be at least 1"),
        (dict(gradient_penalty=-1.0), "'gradient_penalty' must be at least 0"),
        (dict(task="restore", n_critic=2), "task 'restore' has gradient_penalty"),
        (dict(loss="wgan"), "'loss' must be one of .*'wasserstein'"),
    ],
)
def test_bad_critic_settings_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config().replace(**changes)
