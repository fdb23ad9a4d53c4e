"""Restoration training through the same trainer: every shipped restore config trains a few steps
(tiny widths), logs the restorer's losses and held-out PSNR, and writes damaged | restored |
original grids."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import config as config_lib
from jaxgan import trainer
from jaxgan.losses import reconstruction
from jaxgan.state import init_state, make_modules
from jaxgan.tasks.restore.step import restore_step, step_key

TINY = dict(
    image_size=32,
    restorer_width=8,
    ndf=8,
    batch_size=4,
    num_steps=2,
    log_every=1,
    sample_every=2,
    checkpoint_every=2,
    eval_every=2,
    eval_num=6,
    num_samples=4,
    loader_threads=0,
)
METRICS = {"d_loss", "g_loss", "rec_loss", "adv_loss", "d_x", "d_g_z1", "d_g_z2", "finite"}


def tiny(name, **changes):
    return config_lib.load(name).replace(**{**TINY, **changes})


@pytest.mark.parametrize(
    "name, changes",
    [
        ("restore_inpaint64", {}),
        ("restore_denoise64", {}),
        ("restore_sr4x64", {}),
        ("restore_gray64", {}),
        ("restore_denoise64", {"degradation": "jpeg"}),
    ],
)
def test_each_config_trains_a_few_steps(name, changes, tmp_path, monkeypatch):
    config = tiny(name, **changes)
    logged = {}
    original_log = trainer.Monitor.log

    def log(self, step, scalars, line=None):
        logged.setdefault(step, {}).update(scalars)
        return original_log(self, step, scalars, line)

    monkeypatch.setattr(trainer.Monitor, "log", log)
    state = trainer.train(config, tmp_path)
    assert int(state.step) == 2
    assert {"loss/d", "loss/g", "loss/reconstruction", "loss/adversarial", "d/x"} <= set(logged[1])
    assert all(np.isfinite(v) for v in logged[2].values())
    assert 5 < logged[2]["eval/psnr"] < 60 and 0 < logged[2]["eval/ssim"] <= 1
    assert ("eval/psnr_hole" in logged[2]) == (config.degradation == "centre_square")
    grid = np.asarray(Image.open(tmp_path / "samples" / "samples_0000002.png"))
    # 4 triples in one row: 12 tiles of 32 px with 2 px padding
    assert grid.shape[:2] == (2 + 34, 2 + 12 * 34)
    assert (grid.ndim == 2) == (config.nc == 1)


@pytest.fixture(scope="module")
def step_setup():
    config = tiny("restore_inpaint64", lambda_adv=0.0)
    models = make_modules(config)
    state = jax.jit(functools.partial(init_state, config, models))()
    step = jax.jit(functools.partial(restore_step, config, models))
    images = np.random.default_rng(0).integers(
        120, 136, (4, 32, 32, 3), dtype=np.uint8
    )  # near mid-grey...
    images[:, 8:24, 8:24] = 255  # ...with a white centre: the hole's error is far above the image's
    return config, models, state, step, {"images": images}


def test_inpainting_loss_is_over_the_hole_only(step_setup):
    """rec_loss equals the masked L2 of the restorer's own output, not the whole-image error."""
    config, models, state, step, batch = step_setup
    _, metrics = step(state, batch)
    clean = jnp.asarray(batch["images"], jnp.float32) / 127.5 - 1
    from jaxgan.tasks.restore.degradations import Degradation

    damaged, mask = Degradation.from_config(config).apply(step_key(state), clean)
    restored, _ = models["restorer"].apply(
        state.models["restorer"].variables(),
        damaged,
        mask,
        train=True,
        mutable=["batch_stats"],
    )
    hole = reconstruction(restored, clean, mask, "l2")
    whole = reconstruction(restored, clean, jnp.ones_like(mask), "l2")
    # jit and eager convolutions round differently: agreement to 1e-4 relative; hole and whole
    # differ by far more
    np.testing.assert_allclose(float(metrics["rec_loss"]), float(hole), rtol=1e-4)
    assert float(hole) > 2 * float(whole)
    np.testing.assert_allclose(
        float(metrics["g_loss"]), config.lambda_rec * float(hole), rtol=1e-4
    )  # no adv
