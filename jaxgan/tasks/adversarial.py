"""The adversarial half of every task's step, written once against the loss table (`jaxgan.losses`).

The order is pytorch/examples' DCGAN loop, which the seed's code comes from: the trained model (G or
R) runs once in train mode; D runs on the real batch and on the detached fake batch (two BatchNorm
batches, two running-statistics updates) and is updated; D runs on the fake batch again (a third
update of its statistics) for the model's adversarial loss, and the model is updated through the
same forward pass (`jax.vjp`). Under `jit` with the batch sharded over devices, means (losses,
BatchNorm statistics) are over the global batch.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxgan.losses import ADVERSARIAL
from jaxgan.state import ModelState, Modules, TrainState

MUTABLE = ("batch_stats", "spectral")  # the collections a train-mode apply updates


class Options(NamedTuple):
    """The adversarial settings compiled into a step (the seed's by default)."""

    loss: str = "bce"  # `jaxgan.losses.ADVERSARIAL`
    r1_gamma: float = 0.0  # R1 penalty on real images; 0 = off (the weight: state.settings)
    r1_every: int = 1  # lazy R1 every k steps, weighted k
    lr_decay_steps: int = 0  # both learning rates decay to 0 at this step; 0 = constant
    lr_schedule: str = "linear"  # the decay's shape: "linear" or "cosine"
    warmup_steps: int = 0  # linear warm-up from lr / warmup_steps to lr
    gradient_penalty: float = 0.0  # WGAN-GP's lambda; 0 = off (the weight: state.settings)
    n_critic: int = 1  # D updates per G update

    @classmethod
    def from_config(cls, config: Any) -> Options:
        return cls(
            config.loss,
            config.r1_gamma,
            config.r1_every,
            config.lr_decay_steps,
            config.lr_schedule,
            config.warmup_steps,
            config.gradient_penalty,
            config.n_critic,
        )

    def lr_factor(self, step: jax.Array, dtype: Any = jnp.float32) -> jax.Array | None:
        """The learning rates' multiplier at `step` (0-based), or None when they are constant:
        warm-up min(1, (step + 1) / warmup_steps) times the decay, linear max(0, 1 - step / N) or
        cosine (1 + cos(pi min(step, N) / N)) / 2."""
        if not self.lr_decay_steps and not self.warmup_steps:
            return None
        step = step.astype(dtype)
        factor = jnp.ones((), dtype)
        if self.warmup_steps:
            factor = jnp.minimum(1.0, (step + 1) / self.warmup_steps)
        if self.lr_decay_steps:
            progress = jnp.minimum(step, self.lr_decay_steps) / self.lr_decay_steps
            factor = factor * (
                1 - progress
                if self.lr_schedule == "linear"
                else 0.5 * (1 + jnp.cos(jnp.pi * progress))
            )
        return factor


SEED_OPTIONS = Options()


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
    model: ModelState,
    grads: Any,
    optimizer: optax.GradientTransformation,
    step: jax.Array,
    options: Options = SEED_OPTIONS,
) -> tuple[Any, Any]:
    """One Adam step at learning rate lr * `options.lr_factor(step)` (the state keeps lr itself, as
    PyTorch's scheduler keeps its base)."""
    opt_state = model.opt_state
    base = opt_state.hyperparams["learning_rate"]
    factor = options.lr_factor(step, base.dtype)
    if factor is not None:
        opt_state = opt_state._replace(
            hyperparams={**opt_state.hyperparams, "learning_rate": base * factor}
        )
    updates, opt_state = optimizer.update(grads, opt_state, model.params)
    if factor is not None:
        opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": base})
    return optax.apply_updates(model.params, updates), opt_state


def r1_penalty(
    input_vjp: Any, logits: jax.Array, step: jax.Array, gamma: jax.Array, every: int
) -> jax.Array:
    """gamma / 2 * mean over the batch of |grad_x sum D(x)|^2 (Mescheder et al. 2018), through D's
    saved input vjp; lazily (every > 1) only at steps that are multiples of `every`, weighted by
    it."""

    def penalty():
        (grad,) = input_vjp(jnp.ones_like(logits))
        squares = jnp.sum(jnp.square(grad), axis=tuple(range(1, grad.ndim)))
        return gamma / 2 * jnp.mean(squares) * every

    if every == 1:
        return penalty()
    zero = jnp.zeros((), logits.dtype)
    return jax.lax.cond(step % every == 0, penalty, lambda: zero)


def gradient_penalty(input_vjp: Any, logits: jax.Array, weight: jax.Array) -> jax.Array:
    """WGAN-GP (Gulrajani et al. 2017): weight * mean over the batch of (|grad_x D(x)|_2 - 1)^2 at
    the interpolates x, through D's saved input vjp."""
    (grad,) = input_vjp(jnp.ones_like(logits))
    norms = jnp.sqrt(jnp.sum(jnp.square(grad), axis=tuple(range(1, grad.ndim))))
    return weight * jnp.mean(jnp.square(norms - 1))


def discriminator_update(
    modules: Modules,
    state: TrainState,
    real: jax.Array,
    fake: jax.Array,
    options: Options = SEED_OPTIONS,
    penalty_mix: jax.Array | None = None,
    labels: jax.Array | None = None,
) -> tuple[ModelState, dict[str, jax.Array]]:
    """D on the real batch, then on the detached fake batch; the table's D loss (plus R1 on the
    real batch, and WGAN-GP's penalty on D's third batch, the interpolates `penalty_mix` * real +
    (1 - `penalty_mix`) * fake, when asked); one Adam step. `real` and `fake` are D's inputs as
    they are to be seen (augmented already, when the run augments). `d_loss` is the adversarial
    loss alone. A projection D also sees the batch's `labels`."""
    discriminator = state.models["discriminator"]
    fake = jax.lax.stop_gradient(fake)
    classes = () if labels is None else (labels,)

    def loss_fn(params):
        def judge_real(images):
            return apply_train(
                modules["discriminator"], discriminator, images, *classes, params=params
            )

        if options.r1_gamma:
            logits_real, input_vjp, collections = jax.vjp(judge_real, real, has_aux=True)
        else:
            logits_real, collections = judge_real(real)
        logits_fake, collections = apply_train(
            modules["discriminator"],
            discriminator,
            fake,
            *classes,
            params=params,
            collections=collections,
        )
        adversarial, metrics = ADVERSARIAL[options.loss].discriminator(logits_real, logits_fake)
        metrics = {
            **metrics,
            "d_loss": adversarial,
            "d_x": jnp.mean(jax.nn.sigmoid(logits_real)),
            "d_g_z1": jnp.mean(jax.nn.sigmoid(logits_fake)),
        }
        total = adversarial
        if options.r1_gamma:
            gamma = state.settings["r1_gamma"]  # an array: sweepable
            r1 = r1_penalty(input_vjp, logits_real, state.step, gamma, options.r1_every)
            total, metrics = total + r1, {**metrics, "d_r1": r1}
        if options.gradient_penalty:
            share = penalty_mix.astype(real.dtype).reshape((-1,) + (1,) * (real.ndim - 1))
            mixed = share * jax.lax.stop_gradient(real) + (1 - share) * fake

            def judge_mixed(images, after_fake=collections):
                return apply_train(
                    modules["discriminator"],
                    discriminator,
                    images,
                    *classes,
                    params=params,
                    collections=after_fake,
                )

            logits_mixed, mixed_vjp, collections = jax.vjp(judge_mixed, mixed, has_aux=True)
            weight = state.settings["gradient_penalty"]  # an array: sweepable
            penalty = gradient_penalty(mixed_vjp, logits_mixed, weight)
            total, metrics = total + penalty, {**metrics, "d_gp": penalty}
        return total, (collections, metrics)

    (_, (collections, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        discriminator.params
    )
    params, opt_state = adam_update(discriminator, grads, modules.optimizer, state.step, options)
    return ModelState(params, collections, opt_state), metrics


def adversarial_loss(
    modules: Modules,
    discriminator: ModelState,
    fake: jax.Array,
    loss: str,
    labels: jax.Array | None = None,
):
    """The trained model's adversarial loss: the updated D (train mode, a third statistics update)
    on the fake batch (of classes `labels`, for a projection D), through the table's generator
    loss. Returns (loss, (D's collections, mean sigmoid))."""
    classes = () if labels is None else (labels,)
    logits, collections = apply_train(modules["discriminator"], discriminator, fake, *classes)
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
    discriminator: ModelState | None,
    metrics: dict[str, jax.Array],
    options: Options = SEED_OPTIONS,
) -> tuple[TrainState, dict]:
    """Adam step of the trained model `role` (G or R), EMA update, step count and the finiteness
    flag."""
    model = state.models[role]
    params, opt_state = adam_update(model, grads, modules.optimizer, state.step, options)
    decay = ema_decay(state.settings["ema_decay"], state.step)
    ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema_params, params)
    models = {**state.models, role: ModelState(params, collections, opt_state)}
    if discriminator is not None:
        models["discriminator"] = discriminator
    state = state.replace(step=state.step + 1, models=models, ema_params=ema)
    # Everything a checkpoint would hold: losses, both models' parameters, collections and Adam
    # moments, EMA.
    metrics["finite"] = all_finite((metrics, state.models, state.ema_params))
    return state, metrics
