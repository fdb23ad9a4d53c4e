"""The main command's recipe learns: dcgan64 as shipped (DiffAugment, EMA), at reduced width and
steps.

What fails without the recipe (docs/results.md): on the built-in digits the seed's bare DCGAN-64
lets D win within a hundred steps (D(G(z)) near 1e-4) and draws noise. This test trains the shipped
config with only widths, steps and logging cut to CI size, and asks for what the issue asks of it: a
digits-FID below half of the untrained generator's, and a D that has not saturated at the end.
"""

from __future__ import annotations

import json

import jax
import pytest

from jaxgan import config as config_lib
from jaxgan import sharding, trainer
from jaxgan.state import init_state, make_modules
from jaxgan.tasks.gan.evaluate import DigitsEvaluator

STEPS = 200
SMALL = dict(
    ngf=16,
    ndf=16,
    num_steps=STEPS,
    log_every=50,
    sample_every=STEPS,
    checkpoint_every=STEPS,
    eval_every=STEPS,
    eval_num=500,
    num_samples=16,
    loader_threads=2,
)


def recipe(**changes) -> config_lib.Config:
    return config_lib.load("dcgan64", {k: str(v) for k, v in {**SMALL, **changes}.items()})


def test_the_shipped_recipe_is_the_seeds_models_and_optimiser_with_augmentation_and_ema():
    config = config_lib.load("dcgan64")
    assert (config.image_size, config.nc, config.nz, config.ngf, config.ndf, config.batch_size) == (
        64,
        3,
        100,
        64,
        64,
        64,
    )
    assert (config.lr, config.beta1, config.beta2, config.data) == (2e-4, 0.5, 0.999, "")
    assert (
        config.augment == "color,translation,cutout"
        and config.ema_decay > 0
        and config.eval_every > 0
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    config = recipe()
    workdir = tmp_path_factory.mktemp("recipe")
    mesh = sharding.make_mesh()
    models = make_modules(config)
    untrained = DigitsEvaluator(config, models, mesh)(
        jax.jit(lambda: init_state(config, models))(), 0
    )
    trainer.train(config, workdir)
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return untrained, lines


def test_digits_fid_falls_below_half_the_untrained_generators(trained):
    untrained, lines = trained
    final = [line for line in lines if "eval/digits_fid" in line]
    assert final and final[-1]["step"] == STEPS
    assert final[-1]["eval/digits_fid"] < 0.5 * untrained["eval/digits_fid"], (final[-1], untrained)


def test_the_discriminator_does_not_saturate(trained):
    _, lines = trained
    last = [line for line in lines if "d/g_z1" in line][-1]
    assert last["step"] == STEPS
    assert last["d/g_z1"] > 1e-3 and last["d/g_z2"] > 1e-3 and last["d/x"] < 1 - 1e-3, last
