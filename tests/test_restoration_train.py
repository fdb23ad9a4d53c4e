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
from jaxgan.tasks.restore.degradations import INPAINTING
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


def tiny(name, **changes):
    return config_lib.load(name).replace(**{**TINY, **changes})


@pytest.mark.parametrize(
    "name, changes",
    [
        ("restore_inpaint64", {}),
        ("restore_denoise64", {}),
        ("restore_sr4x64", {}),
        ("restore_sr2x64", {}),
        ("restore_gray64", {}),
        ("restore_denoise64", {"restorer": "encoder_decoder", "hole_fill": "zero"}),
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
    adversarial = {"loss/d", "loss/adversarial", "d/x"}
    assert {"loss/g", "loss/reconstruction"} <= set(logged[1])
    if config.lambda_adv:
        assert adversarial <= set(logged[1]) and "discriminator" in state.models
    else:  # D is neither built into the state nor run
        assert not adversarial & set(logged[1]) and sorted(state.models) == ["restorer"]
    assert all(np.isfinite(v) for v in logged[2].values())
    assert 5 < logged[2]["eval/psnr"] < 60 and 0 < logged[2]["eval/ssim"] <= 1
    assert ("eval/psnr_hole" in logged[2]) == (config.degradation in INPAINTING)
    grid = np.asarray(Image.open(tmp_path / "samples" / "samples_0000002.png"))
    # 4 triples in one row: 12 tiles of 32 px with 2 px padding
    assert grid.shape[:2] == (2 + 34, 2 + 12 * 34)
    assert (grid.ndim == 2) == (config.nc == 1)


@pytest.fixture(scope="module")
def step_setup():
    config = tiny("restore_inpaint64", lambda_adv=0.0, degradation="centre_square", dihedral=False)
    models = make_modules(config)
    state = jax.jit(functools.partial(init_state, config, models))()
    step = jax.jit(functools.partial(restore_step, config, models))
    images = np.random.default_rng(0).integers(
        120, 136, (4, 32, 32, 3), dtype=np.uint8
    )  # near mid-grey...
    images[:, 8:24, 8:24] = 255  # ...with a white centre: the hole's error is far above the image's
    return config, models, state, step, {"images": images}


def test_inpainting_loss_is_over_the_hole_only(step_setup):
    """rec_loss equals the masked reconstruction loss of the restorer's own output, not the
    whole-image error."""
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
    hole = reconstruction(restored, clean, mask, config.reconstruction_loss)
    whole = reconstruction(restored, clean, jnp.ones_like(mask), config.reconstruction_loss)
    # jit and eager convolutions round differently: agreement to 1e-4 relative; hole and whole
    # differ by far more
    np.testing.assert_allclose(float(metrics["rec_loss"]), float(hole), rtol=1e-4)
    assert float(hole) > 2 * float(whole)
    np.testing.assert_allclose(
        float(metrics["g_loss"]), config.lambda_rec * float(hole), rtol=1e-4
    )  # no adv


def test_without_adversarial_loss_the_restorer_trains_as_before_and_old_checkpoints_load(tmp_path):
    """lambda_adv 0: no D in the state, and R's step is what it was when D was built and weighed 0
    (the same restorer, Adam and EMA arrays, bit for bit, float64); a checkpoint written with a D
    (as before) loads without it."""
    from jaxgan import checkpoint, loading, run_info
    from jaxgan.tasks import get_task

    config = tiny("restore_sr4x64", dtype="float64", data="fake")
    task = get_task("restore")
    with jax.enable_x64(True):
        modules = make_modules(config)
        lean = jax.jit(functools.partial(init_state, config, modules))()
        full = jax.jit(functools.partial(init_state, config, modules, task.roles))()
        assert sorted(lean.models) == ["restorer"] and sorted(full.models) == sorted(task.roles)
        images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
        step = jax.jit(functools.partial(restore_step, config, modules))
        lean_after, metrics = step(lean, {"images": images})
        full_after, _ = step(full, {"images": images})
        assert "d_loss" not in metrics and float(metrics["finite"]) == 1
        kept = (lean_after.models["restorer"], lean_after.ema_params)
        for a, b in zip(
            jax.tree.leaves(kept),
            jax.tree.leaves((full_after.models["restorer"], full_after.ema_params)),
        ):
            np.testing.assert_array_equal(a, b)
        run_info.write_run_info(tmp_path, config)
        checkpoints = checkpoint.Checkpoints(tmp_path, async_save=False)
        checkpoints.save(1, full_after, {"data_position": 1})
        checkpoints.close()
        _, loaded, _ = loading.restore_training_state(tmp_path)
    assert sorted(loaded.models) == ["restorer"]
    for a, b in zip(jax.tree.leaves(loaded.models["restorer"]), jax.tree.leaves(kept[0])):
        np.testing.assert_array_equal(a, b)
