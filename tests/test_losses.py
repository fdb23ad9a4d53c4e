"""The adversarial loss table, R1 and the per-model optimiser settings: values as their papers
define them (numpy / direct autodiff), chosen by config, and checked when given."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import sharding, sweep
from jaxgan.config import Config, ConfigError
from jaxgan.losses import ADVERSARIAL
from jaxgan.state import init_state, make_modules
from jaxgan.tasks.adversarial import Options, apply_train, discriminator_update
from tests.helpers import tiny_config

RNG = np.random.default_rng(0)
REAL, FAKE = RNG.normal(1, 2, 64), RNG.normal(-1, 2, 64)


def softplus(z: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)


EXPECTED = {  # (D's loss, G's loss) by definition, on logits
    "bce": (np.mean(softplus(-REAL)) + np.mean(softplus(FAKE)), np.mean(softplus(-FAKE))),
    "hinge": (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)), -FAKE.mean()),
    "least_squares": (
        np.mean((REAL - 1) ** 2) / 2 + np.mean(FAKE**2) / 2,
        np.mean((FAKE - 1) ** 2) / 2,
    ),
    "wasserstein": (FAKE.mean() - REAL.mean(), -FAKE.mean()),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_each_loss_is_its_definition(name):
    assert set(EXPECTED) == set(ADVERSARIAL)  # a new loss needs its definition here
    with jax.enable_x64(True):
        d_loss, parts = ADVERSARIAL[name].discriminator(jnp.asarray(REAL), jnp.asarray(FAKE))
        g_loss = ADVERSARIAL[name].generator(jnp.asarray(FAKE))
    np.testing.assert_allclose(float(d_loss), EXPECTED[name][0], rtol=1e-12)
    np.testing.assert_allclose(float(g_loss), EXPECTED[name][1], rtol=1e-12)
    np.testing.assert_allclose(float(parts["d_loss_real"] + parts["d_loss_fake"]), float(d_loss))


@pytest.fixture(scope="module")
def discriminator_setup():
    config = tiny_config(dtype="float64")
    with jax.enable_x64(True):
        modules = make_modules(config)
        state = jax.jit(functools.partial(init_state, config, modules))()
        rng = np.random.default_rng(1)
        real = jnp.asarray(rng.uniform(-1, 1, (4, 32, 32, 1)))
        fake = jnp.asarray(rng.uniform(-1, 1, (4, 32, 32, 1)))
        yield modules, state, real, fake


def direct_r1(modules, state, real, gamma):
    """gamma / 2 * mean_i |grad_x_i sum D(x)|^2, by jax.grad of D (train mode) on the real batch."""
    discriminator = state.models["discriminator"]

    def total(images):
        return jnp.sum(apply_train(modules["discriminator"], discriminator, images)[0])

    grad = jax.grad(total)(real)
    return gamma / 2 * float(jnp.mean(jnp.sum(grad**2, axis=(1, 2, 3))))


@pytest.mark.parametrize("step, every, weight", [(0, 1, 1), (3, 1, 1), (4, 2, 2), (5, 2, 0)])
def test_r1_is_the_real_batch_input_gradient_penalty_lazily_weighted(
    discriminator_setup, step, every, weight
):
    modules, state, real, fake = discriminator_setup
    with jax.enable_x64(True):
        # The term is compiled in by the options; its weight is the run's setting (sweepable).
        settings = {**state.settings, "r1_gamma": jnp.asarray(3.0)}
        state = state.replace(step=jnp.asarray(step, jnp.int32), settings=settings)
        options = Options(r1_gamma=3.0, r1_every=every)
        _, metrics = discriminator_update(modules, state, real, fake, options)
        _, plain = discriminator_update(modules, state, real, fake)
        expected = weight * direct_r1(modules, state, real, 3.0)
    np.testing.assert_allclose(float(metrics["d_r1"]), expected, rtol=1e-10)
    assert expected > 0 or weight == 0
    assert float(metrics["d_loss"]) == float(plain["d_loss"])  # d_loss is the adversarial part


def test_each_model_has_its_own_adam_settings():
    config = tiny_config(g_lr=1e-4, d_lr=4e-4, d_beta1=0.0, g_beta2=0.9)
    state = jax.jit(functools.partial(init_state, config, make_modules(config)))()
    values = {
        role: {k: float(v) for k, v in state.models[role].opt_state.hyperparams.items()}
        for role in ("generator", "discriminator")
    }
    assert values["generator"]["learning_rate"] == pytest.approx(1e-4)
    assert values["discriminator"]["learning_rate"] == pytest.approx(4e-4)
    assert values["discriminator"]["b1"] == 0.0 and values["generator"]["b1"] == 0.5
    assert values["generator"]["b2"] == pytest.approx(0.9)
    assert values["discriminator"]["b2"] == pytest.approx(0.999)


def test_a_sweep_over_d_lr_stacks_each_runs_own_settings():
    base = tiny_config()
    spec = sweep.parse_sweep_flags(["d_lr=1e-4,-1"])
    configs = spec.configs(base)
    mesh = sharding.make_sweep_mesh(len(configs))
    stacked = sweep.init_sweep(base, configs, make_modules(base), mesh).runs
    rates = np.asarray(stacked.models["discriminator"].opt_state.hyperparams["learning_rate"])
    np.testing.assert_allclose(rates, [1e-4, base.lr], rtol=1e-7)
    generator = np.asarray(stacked.models["generator"].opt_state.hyperparams["learning_rate"])
    np.testing.assert_allclose(generator, [base.lr, base.lr], rtol=1e-7)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"loss": "hnge"}, "config field 'loss' must be one of .*'hinge'"),
        ({"d_lr": -0.5}, "'d_lr' must be -1 \\(the shared value\\) or at least 0, got -0.5"),
        ({"r1_every": 0}, "'r1_every' must be at least 1"),
    ],
)
def test_bad_settings_name_the_field(changes, message):
    with pytest.raises(ConfigError, match=message):
        Config().replace(**changes)
