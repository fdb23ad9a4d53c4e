"""The GAN train step: a pure function (state, batch) -> (state, metrics), compiled once.

G runs once (train mode, `jax.vjp`); D is updated on the real and the detached fake batch; G is
updated through the same forward pass with the updated D's verdict (`jaxgan.tasks.adversarial`).
"""

from __future__ import annotations

import jax

from jaxgan.data.images import to_model_range
from jaxgan.state import Modules, TrainState
from jaxgan.tasks.adversarial import (
    SEED_OPTIONS,
    Options,
    adversarial_loss,
    apply_train,
    discriminator_update,
    finish_step,
)
from jaxgan.tasks.gan.augment import diff_augment


def gan_step(
    modules: Modules,
    state: TrainState,
    batch: dict[str, jax.Array],
    augment: tuple[str, ...] = (),
    options: Options = SEED_OPTIONS,
) -> tuple[TrainState, dict]:
    """One DCGAN step on `batch` = {"images": (N, S, S, nc) uint8, "latents": (N, nz)[, "augment"]}.

    With `augment` operations (DiffAugment), D sees real and fake images augmented with the batch's
    draws `augment` (N, USES, NUM_DRAWS): one draw for the real batch, one for the fake batch of D's
    update and one for G's (the augmentation is differentiable, so G learns through it). `options`
    name the adversarial loss (`jaxgan.losses.ADVERSARIAL`), R1 and the learning-rate decay.
    """
    generator = state.models["generator"]
    dtype = modules["generator"].dtype
    real = to_model_range(batch["images"], dtype)
    latents = batch["latents"].astype(dtype)

    def augmented(images: jax.Array, use: int) -> jax.Array:
        return diff_augment(images, batch["augment"][:, use], augment) if augment else images

    def generator_forward(params):
        return apply_train(modules["generator"], generator, latents, params=params)

    fake, generator_vjp, generator_collections = jax.vjp(
        generator_forward, generator.params, has_aux=True
    )
    discriminator, metrics = discriminator_update(
        modules, state, augmented(real, 0), augmented(fake, 1), options
    )
    grad_fn = jax.value_and_grad(
        lambda images: adversarial_loss(modules, discriminator, augmented(images, 2), options.loss),
        has_aux=True,
    )
    (g_loss, (d_collections, d_g_z2)), grad_fake = grad_fn(fake)
    (generator_grads,) = generator_vjp(grad_fake)
    discriminator = discriminator.replace(collections=d_collections)
    metrics.update(g_loss=g_loss, d_g_z2=d_g_z2)
    return finish_step(
        modules,
        state,
        "generator",
        generator_grads,
        generator_collections,
        discriminator,
        metrics,
        options,
    )
