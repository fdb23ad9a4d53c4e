"""The adversarial half of every task's step, written once against the loss table (`jaxgan.losses`).

The order is pytorch/examples' DCGAN loop, which the seed's code comes from: the trained model (G or
R) runs once in train mode; D runs on the real batch and on the detached fake batch (two BatchNorm
batches, two running-statistics updates) and is updated; D runs on the fake batch again (a third
update of its statistics) for the model's adversarial loss, and the model is updated through the
same forward pass (`jax.vjp`). Under `jit` with the batch sharded over devices, means (losses,
BatchNorm statistics) are over the global batch.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from jaxgan.losses import ADVERSARIAL
from jaxgan.state import ModelState, Modules, TrainState

MUTABLE = ("batch_stats",)  # the collections a train-mode apply updates


def all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def apply_train(
    module: Any,
    model: ModelState,
    *inputs: jax.Array,
    params: Any = None,
    collections: dict[str, Any] | None = None,
) -> tuple[jax.Array, dict[str, Any]]:
    """A train-mode forward pass: (outputs, the updated mutable collections), from the model's own
    params and collections unless others are given."""
    variables = {
        "params": model.params if params is None else params,
        **(model.collections if collections is None else collections),
    }
    mutable = [name for name in MUTABLE if name in variables]
    outputs, updates = module.apply(variables, *inputs, train=True, mutable=mutable)
    return outputs, {
        name: updates.get(name, value) for name, value in variables.items() if name != "params"
    }


def adam_update(
    model: ModelState, grads: Any, optimizer: optax.GradientTransformation
) -> tuple[Any, Any]:
    updates, opt_state = optimizer.update(grads, model.opt_state, model.params)
    return optax.apply_updates(model.params, updates), opt_state


def discriminator_update(
    modules: Modules, state: TrainState, real: jax.Array, fake: jax.Array, loss: str
) -> tuple[ModelState, dict[str, jax.Array]]:
    """D on the real batch, then on the detached fake batch; the table's D loss; one Adam step.
    `real` and `fake` are D's inputs as they are to be seen (augmented already, when the run
    augments)."""
    discriminator = state.models["discriminator"]
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(params):
        logits_real, collections = apply_train(
            modules["discriminator"], discriminator, real, params=params
        )
        logits_fake, collections = apply_train(
            modules["discriminator"], discriminator, fake, params=params, collections=collections
        )
        total, metrics = ADVERSARIAL[loss].discriminator(logits_real, logits_fake)
        metrics = {
            **metrics,
            "d_x": jnp.mean(jax.nn.sigmoid(logits_real)),
            "d_g_z1": jnp.mean(jax.nn.sigmoid(logits_fake)),
        }
        return total, (collections, metrics)

    (total, (collections, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        discriminator.params
    )
    params, opt_state = adam_update(discriminator, grads, modules.optimizer)
    metrics["d_loss"] = total
    return ModelState(params, collections, opt_state), metrics


def adversarial_loss(modules: Modules, discriminator: ModelState, fake: jax.Array, loss: str):
    """The trained model's adversarial loss: the updated D (train mode, a third statistics update)
    on the fake batch, through the table's generator loss. Returns (loss, (D's collections, mean
    sigmoid))."""
    logits, collections = apply_train(modules["discriminator"], discriminator, fake)
    return ADVERSARIAL[loss].generator(logits), (collections, jnp.mean(jax.nn.sigmoid(logits)))


def ema_decay(decay: jax.Array, step: jax.Array) -> jax.Array:
    """The EMA decay of update number `step` (0-based): `decay`, warmed up as
    min(decay, (1+step)/(10+step)) (TensorFlow's ExponentialMovingAverage), so that early samples
    do not average in the random init."""
    count = step.astype(decay.dtype)
    return jnp.minimum(decay, (1 + count) / (10 + count))


def finish_step(
    modules: Modules,
    state: TrainState,
    role: str,
    grads: Any,
    collections: dict[str, Any],
    discriminator: ModelState,
    metrics: dict[str, jax.Array],
) -> tuple[TrainState, dict]:
    """Adam step of the trained model `role` (G or R), EMA update, step count and the finiteness
    flag."""
    model = state.models[role]
    params, opt_state = adam_update(model, grads, modules.optimizer)
    decay = ema_decay(state.settings["ema_decay"], state.step)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema_params, params)
    models = {role: ModelState(params, collections, opt_state), "discriminator": discriminator}
    state = state.replace(step=state.step + 1, models=models, ema_params=ema)
    # Everything a checkpoint would hold: losses, both models' parameters, collections and Adam
    # moments, EMA.
    metrics["finite"] = all_finite((metrics, state.models, state.ema_params))
    return state, metrics
