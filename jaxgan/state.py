"""The training state: one pytree holding everything a run needs to continue exactly.

The optimiser is optax Adam with its hyperparameters inside its state (`inject_hyperparams`), and the
per-run settings (EMA decay, loss weights) are arrays too, so one compiled step serves any values
(single runs, sweeps, checkpoints and the converter share this layout).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxgan.config import Config
from jaxgan.models import Discriminator, Generator, Restorer

ADAM_EPS = 1e-8  # PyTorch's default, added after the square root as PyTorch does


@struct.dataclass
class ModelState:
    params: Any
    batch_stats: Any
    opt_state: Any


@struct.dataclass
class TrainState:
    """`generator` is G for task "gan" and the restorer R for task "restore"."""

    step: jax.Array  # int32 scalar: optimisation steps taken == global batches consumed
    generator: ModelState
    discriminator: ModelState
    ema_params: Any  # EMA of the generator's params; equals them when ema_decay = 0
    settings: dict[str, jax.Array]  # ema_decay, lambda_rec, lambda_adv: traced, per run
    rng: jax.Array  # uint32 key data for on-device randomness (degradations), folded with the step


@struct.dataclass
class Models:
    """The static half of a run: modules and optimiser (hashable, closed over by the compiled step)."""

    generator: nn.Module = struct.field(pytree_node=False)
    discriminator: nn.Module = struct.field(pytree_node=False)
    optimizer: optax.GradientTransformation = struct.field(pytree_node=False)


def param_dtype(config: Config) -> Any:
    return jnp.float64 if config.dtype == "float64" else jnp.float32


def enable_precision(config: Config) -> None:
    """float64 runs need JAX's 64-bit mode; turned on here unless already on (e.g. `jax.enable_x64()`)."""
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def compute_dtype(config: Config) -> Any:
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}[config.dtype]


def generator_arch(config: Config) -> dict[str, Any]:
    """The architecture record (as `jaxgan.convert` reads it off a state dict) of the run's generator or R."""
    if config.task == "restore":
        return dict(model="restorer", nc=config.nc, width=config.restorer_width, image_size=config.image_size,
                    skips=config.restorer_skips)
    return dict(model="generator", nz=config.nz, ngf=config.ngf, nc=config.nc, image_size=config.image_size)


def discriminator_arch(config: Config) -> dict[str, Any]:
    return dict(model="discriminator", ndf=config.ndf, nc=config.nc, image_size=config.image_size)


def make_optimizer() -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.adam)(learning_rate=0.0, b1=0.0, b2=0.0, eps=ADAM_EPS)


def make_models(config: Config) -> Models:
    """G (or R) and D in the run's dtypes and `precision`, and the optimiser."""
    kwargs = dict(dtype=compute_dtype(config), param_dtype=param_dtype(config), precision=config.precision)
    if config.task == "restore":
        generator = Restorer(config.nc, config.restorer_width, config.image_size, config.restorer_skips, **kwargs)
    else:
        generator = Generator(config.nz, config.ngf, config.nc, config.image_size, **kwargs)
    discriminator = Discriminator(config.ndf, config.nc, config.image_size, **kwargs)
    return Models(generator, discriminator, make_optimizer())


def _adam_state(models: Models, params: Any, config: Config, dtype: Any) -> Any:
    opt_state = models.optimizer.init(params)
    hyperparams = {"learning_rate": config.lr, "b1": config.beta1, "b2": config.beta2, "eps": ADAM_EPS}
    for name, value in hyperparams.items():
        opt_state.hyperparams[name] = jnp.asarray(value, dtype)
    return opt_state


def example_inputs(config: Config, batch: int = 1) -> tuple:
    dtype = param_dtype(config)
    images = jnp.zeros((batch, config.image_size, config.image_size, config.nc), dtype)
    if config.task == "restore":
        return images, jnp.zeros(images.shape[:-1] + (1,), dtype)
    return (jnp.zeros((batch, config.nz), dtype),)


def init_state(config: Config, models: Models) -> TrainState:
    """Fresh weights (DCGAN init) from `config.seed`; pure, so it can run under `jit` with shardings."""
    key = jax.random.key(config.seed)
    dtype = param_dtype(config)
    generator_vars = models.generator.init(jax.random.fold_in(key, 0), *example_inputs(config), train=False)
    discriminator_vars = models.discriminator.init(
        jax.random.fold_in(key, 1), jnp.zeros((1, config.image_size, config.image_size, config.nc), dtype),
        train=False)

    def model_state(variables):
        params = variables["params"]
        return ModelState(params, variables["batch_stats"], _adam_state(models, params, config, dtype))

    generator = model_state(generator_vars)
    settings = {name: jnp.asarray(getattr(config, name), dtype) for name in ("ema_decay", "lambda_rec", "lambda_adv")}
    return TrainState(
        step=jnp.zeros((), jnp.int32), generator=generator, discriminator=model_state(discriminator_vars),
        ema_params=generator.params, settings=settings,
        rng=jax.random.key_data(jax.random.fold_in(key, 2)),
    )


def sample_variables(state: TrainState, use_ema: bool = True) -> dict[str, Any]:
    """The generator's variables for sampling: EMA params (when on) with the live BatchNorm statistics."""
    params = state.ema_params if use_ema else state.generator.params
    return {"params": params, "batch_stats": state.generator.batch_stats}
