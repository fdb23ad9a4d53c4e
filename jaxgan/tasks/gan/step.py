"""The GAN train step: a pure function (state, batch) -> (state, metrics), compiled once.

G runs once (train mode, `jax.vjp`); D is updated on the real and the detached fake batch; G is
updated through the same forward pass with the updated D's verdict (`jaxgan.tasks.adversarial`).
With n_critic = n > 1, n - 1 critic-only updates (each on its own batch and latents) come first.
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


def critic_update(
    modules: Modules,
    state: TrainState,
    batch: dict[str, jax.Array],
    augment: tuple[str, ...],
    options: Options,
) -> TrainState:
    """A D update alone (WGAN's extra critic iterations): G in train mode on the batch's latents
    (its BatchNorm statistics update, as PyTorch's loop does), D on real and detached fake."""
    generator = state.models["generator"]
    real = to_model_range(batch["images"], modules["generator"].dtype)
    latents = batch["latents"].astype(real.dtype)
    fake, collections = apply_train(modules["generator"], generator, latents, *classes(batch))
    discriminator, _ = judged_update(modules, state, real, fake, batch, augment, options)
    models = {**state.models, "discriminator": discriminator}
    models["generator"] = generator.replace(collections=collections)
    return state.replace(models=models)


def judged_update(
    modules: Modules,
    state: TrainState,
    real: jax.Array,
    fake: jax.Array,
    batch: dict[str, jax.Array],
    augment: tuple[str, ...],
    options: Options,
):
    """D's update on the batch's real and fake images as D sees them (augmented with draws 0 and
    1), with the batch's WGAN-GP mixes and labels."""
    return discriminator_update(
        modules,
        state,
        augmented(real, batch, 0, augment),
        augmented(fake, batch, 1, augment),
        options,
        batch.get("penalty_mix"),
        batch.get("labels"),
    )


def classes(batch: dict[str, jax.Array]) -> tuple[jax.Array, ...]:
    """A class-conditional batch's labels, as the models' extra input: (labels,) or ()."""
    return (batch["labels"],) if "labels" in batch else ()


def augmented(
    images: jax.Array, batch: dict[str, jax.Array], use: int, augment: tuple[str, ...]
) -> jax.Array:
    """D's view of `images`: DiffAugment with the batch's draw `use` (0 real, 1 D's fake, 2 G's
    fake), or the images themselves."""
    return diff_augment(images, batch["augment"][:, use], augment) if augment else images


def gan_step(
    modules: Modules,
    state: TrainState,
    batch: dict[str, jax.Array],
    augment: tuple[str, ...] = (),
    options: Options = SEED_OPTIONS,
) -> tuple[TrainState, dict]:
    """One DCGAN step on `batch` = {"images": (N, S, S, nc) uint8, "latents": (N, nz)[, "labels"]
    [, "augment"][, "penalty_mix"]}; with `options.n_critic` = n > 1 every array is (N, n, ...):
    batch i of the step feeds critic update i, the last one also G's update. A class-conditional
    G draws the real batch's classes, and the projection D judges real and fake with them.

    With `augment` operations (DiffAugment), D sees real and fake images augmented with the batch's
    draws `augment` (N, USES, NUM_DRAWS): one draw for the real batch, one for the fake batch of D's
    update and one for G's (the augmentation is differentiable, so G learns through it). `options`
    name the adversarial loss (`jaxgan.losses.ADVERSARIAL`), R1, WGAN-GP and the learning-rate
    decay.
    """
    if options.n_critic > 1:
        for index in range(options.n_critic - 1):
            part = {key: value[:, index] for key, value in batch.items()}
            state = critic_update(modules, state, part, augment, options)
        batch = {key: value[:, -1] for key, value in batch.items()}
    generator = state.models["generator"]
    dtype = modules["generator"].dtype
    real = to_model_range(batch["images"], dtype)
    latents = batch["latents"].astype(dtype)

    def generator_forward(params):
        return apply_train(modules["generator"], generator, latents, *classes(batch), params=params)

    fake, generator_vjp, generator_collections = jax.vjp(
        generator_forward, generator.params, has_aux=True
    )
    discriminator, metrics = judged_update(modules, state, real, fake, batch, augment, options)
    grad_fn = jax.value_and_grad(
        lambda images: adversarial_loss(
            modules,
            discriminator,
            augmented(images, batch, 2, augment),
            options.loss,
            batch.get("labels"),
        ),
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
