"""The restoration train step: degrade on the device, restore, judge; one pure function, compiled
once.

The loss is Context Encoders' (Pathak et al. 2016): `lambda_rec` x reconstruction (L1 or L2; for
inpainting over the missing pixels only, otherwise over the whole image) + `lambda_adv` x
adversarial, with the discriminator judging the restored image (known pixels pasted back, as it is
delivered) against the clean one. The order of D's and R's updates is the GAN step's
(`jaxgan.tasks.adversarial`).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxgan.config import Config
from jaxgan.data.images import to_model_range
from jaxgan.losses import reconstruction
from jaxgan.state import Modules, TrainState
from jaxgan.tasks.adversarial import (
    Options,
    adversarial_loss,
    apply_train,
    discriminator_update,
    finish_step,
)
from jaxgan.tasks.restore.degradations import Degradation


def step_key(state: TrainState) -> jax.Array:
    """The step's key for on-device randomness: the run's key folded with the step (any device
    count, resume)."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)


def random_dihedral(key: jax.Array, *images: jax.Array) -> tuple[jax.Array, ...]:
    """The same random one of the 8 flips and 90-degree rotations per example, applied to each of
    `images` (square, NHWC): the restorer's 8-fold augmentation."""
    bits = jax.random.bernoulli(key, 0.5, (3, images[0].shape[0], 1, 1, 1))

    def transform(x):
        x = jnp.where(bits[0], jnp.swapaxes(x, 1, 2), x)
        x = jnp.where(bits[1], x[:, ::-1], x)
        return jnp.where(bits[2], x[:, :, ::-1], x)

    return tuple(transform(x) for x in images)


DIHEDRAL_KEY = 7  # folded into the step key for the augmentation's draws


def compose(restored: jax.Array, damaged: jax.Array, mask: jax.Array) -> jax.Array:
    """The delivered image: restored pixels where the mask is 1 (missing),
    the input's where it is 0."""
    return mask * restored + (1 - mask) * damaged


def restore_step(config: Config, modules: Modules, state: TrainState, batch: dict[str, jax.Array]):
    """One step on `batch` = {"images": uint8 (N, S, S, nc)[, "damaged": uint8 from the host
    (JPEG)]}."""
    degradation = Degradation.from_config(config, training=True)
    options = Options.from_config(config)
    restorer = state.models["restorer"]
    dtype = modules["restorer"].dtype
    clean = to_model_range(batch["images"], dtype)
    host_damaged = to_model_range(batch["damaged"], dtype) if "damaged" in batch else None
    if config.dihedral:
        key = jax.random.fold_in(step_key(state), DIHEDRAL_KEY)
        if host_damaged is None:
            (clean,) = random_dihedral(key, clean)
        else:
            clean, host_damaged = random_dihedral(key, clean, host_damaged)
    damaged, mask = degradation.apply(step_key(state), clean, host_damaged)
    weight = mask if degradation.is_inpainting else jnp.ones_like(mask)

    def restorer_forward(params):
        return apply_train(modules["restorer"], restorer, damaged, mask, params=params)

    restored, restorer_vjp, restorer_collections = jax.vjp(
        restorer_forward, restorer.params, has_aux=True
    )
    discriminator, metrics = None, {}  # no D when lambda_adv is 0 (RestoreTask.roles_for)
    if "discriminator" in state.models:
        delivered = compose(restored, damaged, mask)
        discriminator, metrics = discriminator_update(modules, state, clean, delivered, options)

    def restorer_loss(restored):
        rec_loss = reconstruction(
            restored.astype(jnp.float32),
            clean.astype(jnp.float32),
            weight,
            config.reconstruction_loss,
        )
        total = state.settings["lambda_rec"] * rec_loss
        if discriminator is None:
            return total, ({"rec_loss": rec_loss}, None)
        adv_loss, (d_collections, d_g_z2) = adversarial_loss(
            modules, discriminator, compose(restored, damaged, mask), options.loss
        )
        total = total + state.settings["lambda_adv"] * adv_loss
        return total, (
            {"rec_loss": rec_loss, "adv_loss": adv_loss, "d_g_z2": d_g_z2},
            d_collections,
        )

    (g_loss, (losses, d_collections)), grad_restored = jax.value_and_grad(
        restorer_loss, has_aux=True
    )(restored)
    (restorer_grads,) = restorer_vjp(grad_restored)
    if discriminator is not None:
        discriminator = discriminator.replace(collections=d_collections)
    metrics.update(g_loss=g_loss, **losses)
    return finish_step(
        modules,
        state,
        "restorer",
        restorer_grads,
        restorer_collections,
        discriminator,
        metrics,
        options,
    )


def eval_restore_fn(modules: Modules):
    """jit: (variables, damaged, mask) -> the delivered images, the restorer in eval mode."""

    @jax.jit
    def run(variables: Any, damaged: jax.Array, mask: jax.Array) -> jax.Array:
        restored = modules["restorer"].apply(variables, damaged, mask, train=False)
        return compose(jnp.clip(restored, -1, 1), damaged, mask)

    return run
