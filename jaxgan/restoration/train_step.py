"""The restoration train step: degrade on the device, restore, judge; one pure function, compiled once.

The loss is Context Encoders' (Pathak et al. 2016): `lambda_rec` x reconstruction (L1 or L2; for
inpainting over the missing pixels only, otherwise over the whole image) + `lambda_adv` x adversarial,
with the discriminator judging the restored image (known pixels pasted back, as it is delivered)
against the clean one. The order of D's and R's updates is the GAN step's (`jaxgan.train_step`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.config import Config
from jaxgan.losses import reconstruction
from jaxgan.monitor import image_grid
from jaxgan.restoration.degradations import Degradation, jpeg_compress
from jaxgan.state import Models, TrainState, param_dtype, sample_variables
from jaxgan.train_step import adversarial_loss, discriminator_update, finish_step, to_model_range

SAMPLE_KEY = 1  # the fixed key (folded into the seed) of the held-out degradations of grids and evaluation


def step_key(state: TrainState) -> jax.Array:
    """The step's key for on-device randomness: the run's key folded with the step (any device count, resume)."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def compose(restored: jax.Array, damaged: jax.Array, mask: jax.Array) -> jax.Array:
    """The delivered image: restored pixels where the mask is 1 (missing), the input's where it is 0."""
    return mask * restored + (1 - mask) * damaged


def restore_step(config: Config, models: Models, state: TrainState, batch: dict[str, jax.Array]):
    """One step on `batch` = {"images": uint8 (N, S, S, nc)[, "damaged": uint8 from the host (JPEG)]}."""
    degradation = Degradation.from_config(config)
    dtype = models.generator.dtype
    clean = to_model_range(batch["images"], dtype)
    host_damaged = to_model_range(batch["damaged"], dtype) if "damaged" in batch else None
    damaged, mask = degradation.apply(step_key(state), clean, host_damaged)
    weight = mask if degradation.is_inpainting else jnp.ones_like(mask)

    def restorer_forward(params):
        restored, updates = models.generator.apply(
            {"params": params, "batch_stats": state.generator.batch_stats}, damaged, mask, train=True,
            mutable=["batch_stats"])
        return restored, updates["batch_stats"]

    restored, restorer_vjp, restorer_stats = jax.vjp(restorer_forward, state.generator.params, has_aux=True)
    discriminator, metrics = discriminator_update(models, state, clean, compose(restored, damaged, mask))

    def restorer_loss(restored):
        rec_loss = reconstruction(restored.astype(jnp.float32), clean.astype(jnp.float32), weight,
                                  config.reconstruction_loss)
        adv_loss, (d_stats, d_g_z2) = adversarial_loss(models, discriminator, compose(restored, damaged, mask))
        total = state.settings["lambda_rec"] * rec_loss + state.settings["lambda_adv"] * adv_loss
        return total, (rec_loss, adv_loss, d_stats, d_g_z2)

    (g_loss, (rec_loss, adv_loss, d_stats, d_g_z2)), grad_restored = jax.value_and_grad(
        restorer_loss, has_aux=True)(restored)
    (restorer_grads,) = restorer_vjp(grad_restored)
    discriminator = discriminator.replace(batch_stats=d_stats)
    metrics.update(g_loss=g_loss, rec_loss=rec_loss, adv_loss=adv_loss, d_g_z2=d_g_z2)
    return finish_step(models, state, restorer_grads, restorer_stats, discriminator, metrics)


def held_out_batch(config: Config, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, damaged, mask) float arrays in [-1, 1] of `num` fixed held-out crops, degraded with a fixed key."""
    from jaxgan.restoration.heldout import held_out_crops

    crops = held_out_crops(config.data, config.image_size, config.nc, num, config.seed)
    degradation = Degradation.from_config(config)
    dtype = param_dtype(config)
    host = jnp.asarray(jpeg_compress(crops, config.jpeg_quality)) if degradation.on_host else None
    clean = to_model_range(jnp.asarray(crops), dtype)
    key = jax.random.fold_in(jax.random.key(config.seed), SAMPLE_KEY)
    damaged, mask = jax.jit(degradation.apply)(key, clean, None if host is None else to_model_range(host, dtype))
    return np.asarray(clean), np.asarray(damaged), np.asarray(mask)


def eval_restore_fn(models: Models):
    """jit: (variables, damaged, mask) -> the delivered images, the restorer in eval mode."""

    @jax.jit
    def run(variables: Any, damaged: jax.Array, mask: jax.Array) -> jax.Array:
        restored = models.generator.apply(variables, damaged, mask, train=False)
        return compose(restored, damaged, mask)

    return run


def make_sample_grid(config: Config, models: Models, mesh):
    """state -> uint8 grid of damaged | restored | original triples of fixed held-out crops (EMA when kept)."""
    clean, damaged, mask = held_out_batch(config, config.num_samples)
    run = eval_restore_fn(models)
    per_row = max(1, min(4, len(clean)))

    def sample(state: TrainState) -> np.ndarray:
        variables = sample_variables(state, config.ema_decay > 0)
        restored = np.asarray(jax.device_get(run(variables, damaged, mask)), np.float32)
        shown = damaged.copy()
        if Degradation.from_config(config).is_inpainting:  # holes shown white, as a mask file marks them
            shown = np.where(mask > 0.5, 1.0, shown)
        triples = np.stack([shown, restored, clean], axis=1).reshape((-1,) + clean.shape[1:])
        return image_grid(triples.astype(np.float32), columns=3 * per_row)

    return sample
