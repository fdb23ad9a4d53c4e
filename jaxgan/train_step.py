"""The adversarial train step: a pure function (state, batch) -> (state, metrics), compiled once.

The order is pytorch/examples' DCGAN loop, which the seed's code comes from: G runs once (train
mode); D runs on the real batch and on the detached fake batch (two BatchNorm batches, two
running-statistics updates) and is updated; D runs on the fake batch again (a third update of its
statistics) for G's loss, and G is updated through the same forward pass (`jax.vjp`). Under `jit`
with the batch sharded over devices, means (losses, BatchNorm statistics) are over the global batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxgan.augment import diff_augment
from jaxgan.losses import bce_with_logits
from jaxgan.state import Models, ModelState, TrainState


def to_model_range(images: jax.Array, dtype: Any) -> jax.Array:
    """uint8 0..255 -> float in [-1, 1] (jaxgan's convention); float input is taken as already in range."""
    if jnp.issubdtype(images.dtype, jnp.integer):
        images = images.astype(jnp.promote_types(dtype, jnp.float32)) / 127.5 - 1
    return images.astype(dtype)


def all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def adam_update(model: ModelState, grads: Any, optimizer: optax.GradientTransformation) -> tuple[Any, Any]:
    updates, opt_state = optimizer.update(grads, model.opt_state, model.params)
    return optax.apply_updates(model.params, updates), opt_state


def discriminator_update(models: Models, state: TrainState, real: jax.Array, fake: jax.Array):
    """D on real (label 1), then on the detached fake (label 0); both BCE gradients summed; one Adam step.
    `real` and `fake` are D's inputs as they are to be seen (augmented already, when the run augments)."""
    discriminator = models.discriminator
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(params):
        stats = state.discriminator.batch_stats
        logits_real, updates = discriminator.apply(
            {"params": params, "batch_stats": stats}, real, train=True, mutable=["batch_stats"])
        logits_fake, updates = discriminator.apply(
            {"params": params, "batch_stats": updates["batch_stats"]}, fake, train=True, mutable=["batch_stats"])
        loss_real, loss_fake = bce_with_logits(logits_real, 1), bce_with_logits(logits_fake, 0)
        metrics = {"d_loss_real": loss_real, "d_loss_fake": loss_fake, "d_x": jnp.mean(jax.nn.sigmoid(logits_real)),
                   "d_g_z1": jnp.mean(jax.nn.sigmoid(logits_fake))}
        return loss_real + loss_fake, (updates["batch_stats"], metrics)

    (loss, (batch_stats, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.discriminator.params)
    params, opt_state = adam_update(state.discriminator, grads, models.optimizer)
    metrics["d_loss"] = loss
    return ModelState(params, batch_stats, opt_state), metrics


def adversarial_loss(models: Models, discriminator: ModelState, fake: jax.Array):
    """G's loss: the updated D (train mode, a third statistics update) on the fake batch, label 1."""
    logits, updates = models.discriminator.apply(
        {"params": discriminator.params, "batch_stats": discriminator.batch_stats}, fake, train=True,
        mutable=["batch_stats"])
    return bce_with_logits(logits, 1), (updates["batch_stats"], jnp.mean(jax.nn.sigmoid(logits)))


def ema_decay(decay: jax.Array, step: jax.Array) -> jax.Array:
    """The EMA decay of update number `step` (0-based): `decay`, warmed up as min(decay, (1+step)/(10+step))
    (TensorFlow's ExponentialMovingAverage), so that early samples do not average in the random init."""
    count = step.astype(decay.dtype)
    return jnp.minimum(decay, (1 + count) / (10 + count))


def finish_step(models: Models, state: TrainState, generator_grads: Any, generator_stats: Any,
                discriminator: ModelState, metrics: dict[str, jax.Array]) -> tuple[TrainState, dict[str, jax.Array]]:
    """Adam step of G (or R), EMA update, step count and the finiteness flag shared by both tasks."""
    params, opt_state = adam_update(state.generator, generator_grads, models.optimizer)
    decay = ema_decay(state.settings["ema_decay"], state.step)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema_params, params)
    state = state.replace(step=state.step + 1, generator=ModelState(params, generator_stats, opt_state),
                          discriminator=discriminator, ema_params=ema)
    # Everything a checkpoint would hold: losses, both models' parameters, statistics and Adam moments, EMA.
    metrics["finite"] = all_finite((metrics, state.generator, state.discriminator, state.ema_params))
    return state, metrics


def gan_step(models: Models, state: TrainState, batch: dict[str, jax.Array],
             augment: tuple[str, ...] = ()) -> tuple[TrainState, dict]:
    """One DCGAN step on `batch` = {"images": (N, S, S, nc) uint8, "latents": (N, nz)[, "augment"]}.

    With `augment` operations (DiffAugment), D sees real and fake images augmented with the batch's
    draws `augment` (N, USES, NUM_DRAWS): one draw for the real batch, one for the fake batch of D's
    update and one for G's (the augmentation is differentiable, so G learns through it).
    """
    dtype = models.generator.dtype
    real = to_model_range(batch["images"], dtype)
    latents = batch["latents"].astype(dtype)

    def augmented(images: jax.Array, use: int) -> jax.Array:
        return diff_augment(images, batch["augment"][:, use], augment) if augment else images

    def generator_forward(params):
        fake, updates = models.generator.apply(
            {"params": params, "batch_stats": state.generator.batch_stats}, latents, train=True,
            mutable=["batch_stats"])
        return fake, updates["batch_stats"]

    fake, generator_vjp, generator_stats = jax.vjp(generator_forward, state.generator.params, has_aux=True)
    discriminator, metrics = discriminator_update(models, state, augmented(real, 0), augmented(fake, 1))
    grad_fn = jax.value_and_grad(lambda f: adversarial_loss(models, discriminator, augmented(f, 2)), has_aux=True)
    (g_loss, (d_stats, d_g_z2)), grad_fake = grad_fn(fake)
    (generator_grads,) = generator_vjp(grad_fake)
    discriminator = discriminator.replace(batch_stats=d_stats)
    metrics.update(g_loss=g_loss, d_g_z2=d_g_z2)
    return finish_step(models, state, generator_grads, generator_stats, discriminator, metrics)
