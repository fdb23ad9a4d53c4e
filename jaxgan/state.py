"""The training state: one pytree holding everything a run needs to continue exactly.

The state names its models by role (`generator` and `discriminator` for a GAN, `restorer` and
`discriminator` for restoration: the task says which). Each model keeps its parameters, its mutable
variable collections (BatchNorm's `batch_stats` today; whatever a layer adds) and its optimiser
state. The optimiser is optax Adam with its hyperparameters inside its state (`inject_hyperparams`),
and the per-run settings (EMA decay, loss weights) are arrays too, so one compiled step serves any
values (single runs, sweeps, checkpoints and the converter share this layout).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxgan.config import Config

ADAM_EPS = 1e-8  # PyTorch's default, added after the square root as PyTorch does
# Config values kept as traced arrays (per run in a sweep); the penalty weights since format 3.
SETTINGS = ("ema_decay", "lambda_rec", "lambda_adv", "r1_gamma", "gradient_penalty")
# Each model's own Adam settings ("g": the trained model, "d": the discriminator); -1 = shared.
ADAM_FIELDS = ("g_lr", "d_lr", "g_beta1", "d_beta1", "g_beta2", "d_beta2")


@struct.dataclass
class ModelState:
    params: Any
    collections: dict[str, Any]  # mutable variable collections, e.g. {"batch_stats": ...}
    opt_state: Any

    def variables(self, params: Any = None) -> dict[str, Any]:
        """Flax variables to apply the model with: `params` (default: its own) and its
        collections."""
        return {"params": self.params if params is None else params, **self.collections}


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: optimisation steps taken == global batches consumed
    models: dict[str, ModelState]  # by role: the task's `roles`
    ema_params: (
        Any  # EMA of the sampled model's params (the task's `sampled`); equals them at decay 0
    )
    settings: dict[str, jax.Array]  # ema_decay, lambda_rec, lambda_adv: traced, per run
    rng: jax.Array  # uint32 key data for on-device randomness (degradations), folded with the step


@struct.dataclass
class Modules:
    """The static half of a run: its Flax modules by role and the optimiser (closed over by the
    step)."""

    by_role: dict[str, nn.Module] = struct.field(pytree_node=False)
    optimizer: optax.GradientTransformation = struct.field(pytree_node=False)

    def __getitem__(self, role: str) -> nn.Module:
        return self.by_role[role]


def param_dtype(config: Config) -> Any:
    return jnp.float64 if config.dtype == "float64" else jnp.float32


def enable_precision(config: Config) -> None:
    """float64 runs need JAX's 64-bit mode; turned on here unless already on
    (`jax.enable_x64()`)."""
    if config.dtype == "float64" and not jax.config.jax_enable_x64:
        jax.config.update("jax_enable_x64", True)


def compute_dtype(config: Config) -> Any:
    return {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}[config.dtype]


def module_options(config: Config) -> dict[str, Any]:
    """The dtypes and `precision` every module of a run is built with."""
    return dict(
        dtype=compute_dtype(config), param_dtype=param_dtype(config), precision=config.precision
    )


def make_optimizer() -> optax.GradientTransformation:
    return optax.inject_hyperparams(optax.adam)(learning_rate=0.0, b1=0.0, b2=0.0, eps=ADAM_EPS)


def make_modules(config: Config) -> Modules:
    """The task's models in the run's dtypes and `precision`, and the optimiser."""
    from jaxgan.tasks import get_task

    return Modules(get_task(config.task).build_models(config), make_optimizer())


def _own_or_shared(own: Any, shared: Any, dtype: Any) -> jax.Array:
    """`own` unless it is -1, then `shared`; Python values or traced arrays (sweeps)."""
    if isinstance(own, (int, float)):
        return jnp.asarray(shared if own < 0 else own, dtype)
    own, shared = jnp.asarray(own, dtype), jnp.asarray(shared, dtype)
    return jnp.where(own < 0, shared, own)


def run_settings(config: Config, dtype: Any) -> dict[str, jax.Array]:
    """The run's `SETTINGS` as arrays of the parameters' dtype."""
    return {name: jnp.asarray(getattr(config, name), dtype) for name in SETTINGS}


def adam_settings(config: Config, role: str, dtype: Any) -> dict[str, jax.Array]:
    """The learning rate and betas of `role`'s Adam: its own config fields (d_* for the
    discriminator, g_* for the trained model) or, where they are -1, the shared lr and betas."""
    prefix = "d_" if role == "discriminator" else "g_"
    return {
        name: _own_or_shared(getattr(config, prefix + field), getattr(config, field), dtype)
        for name, field in (("learning_rate", "lr"), ("b1", "beta1"), ("b2", "beta2"))
    }


def _adam_state(modules: Modules, params: Any, config: Config, dtype: Any, role: str) -> Any:
    opt_state = modules.optimizer.init(params)
    hyperparams = {**adam_settings(config, role, dtype), "eps": jnp.asarray(ADAM_EPS, dtype)}
    for name, value in hyperparams.items():
        opt_state.hyperparams[name] = value
    return opt_state


def init_state(
    config: Config, modules: Modules, roles: tuple[str, ...] | None = None
) -> TrainState:
    """Fresh weights (DCGAN init) from `config.seed`; pure, so it can run under `jit` with
    shardings.

    Role i of the task is initialised with the seed's key folded with i; the rng with len(roles),
    so that a run that trains fewer roles (`Task.roles_for`) starts its models the same. `roles`
    (default: the ones `config` trains) builds another set, e.g. to read an older checkpoint."""
    from jaxgan.tasks import get_task

    task = get_task(config.task)
    key = jax.random.key(config.seed)
    dtype = param_dtype(config)
    models = {}
    for role in roles or task.roles_for(config):
        index = task.roles.index(
            role
        )  # role i's key is the seed's folded with i, whatever is trained
        variables = dict(
            modules[role].init(
                jax.random.fold_in(key, index), *task.example_inputs(config, role), train=False
            )
        )
        params = variables.pop("params")
        models[role] = ModelState(
            params, dict(variables), _adam_state(modules, params, config, dtype, role)
        )
    settings = run_settings(config, dtype)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        models=models,
        ema_params=models[task.sampled].params,
        settings=settings,
        rng=jax.random.key_data(jax.random.fold_in(key, len(task.roles))),
    )


def sampled_variables(state: TrainState, config: Config, use_ema: bool = True) -> dict[str, Any]:
    """The sampled model's variables (G, or R): its EMA params when the run keeps an EMA and
    `use_ema`, with the live model's collections (BatchNorm statistics)."""
    from jaxgan.tasks import get_task

    model = state.models[get_task(config.task).sampled]
    return model.variables(state.ema_params if use_ema and config.ema_decay > 0 else None)
