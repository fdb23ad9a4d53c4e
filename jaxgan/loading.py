"""Loading what a training workdir or a converted model folder holds: the whole training state, or
one model's variables (the one loader behind sampling, `restore()`, the GAN prior and the
converter)."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import jax

from jaxgan import checkpoint, model_folder, run_info
from jaxgan.config import Config


def abstract_state(
    config: Config, sharding: jax.sharding.Sharding, roles: tuple[str, ...] | None = None
) -> Any:
    """The run's TrainState as shapes, dtypes and `sharding`, to restore a checkpoint into (nothing
    is computed); `roles` as `init_state` takes them."""
    from jaxgan.state import init_state, make_modules

    shapes = jax.eval_shape(functools.partial(init_state, config, make_modules(config), roles))
    return checkpoint.abstract_like(shapes, sharding)


def restore_state(
    checkpoints: checkpoint.Checkpoints, step: int, config: Config, sharding: jax.sharding.Sharding
) -> tuple[Any, dict[str, Any]]:
    """(the run's TrainState at `step`, placed with `sharding`, the checkpoint's meta), restored
    into the state's abstract shapes (nothing is computed). A checkpoint that holds a model this
    config does not train (a restorer's D, written before lambda_adv 0 stopped building it) is read
    whole and that model dropped."""
    from jaxgan.tasks import get_task

    task = get_task(config.task)
    wanted = task.roles_for(config)
    # Roles keep their names in both formats, but for format 1's `generator` (always trained).
    extra = {role for role in task.roles if role not in wanted} & checkpoints.saved_models(step)
    roles = tuple(role for role in task.roles if role in wanted or role in extra)
    from jaxgan.state import param_dtype, run_settings

    settings = run_settings(config, param_dtype(config))
    state, meta = checkpoints.restore(step, abstract_state(config, sharding, roles), settings)
    position = meta.get("data_position", config.data_position(step))
    if position != config.data_position(step):
        raise checkpoint.CheckpointError(
            f"checkpoint {step} of {checkpoints.directory}: data position {position}, not "
            f"{config.data_position(step)} (step {step} x the {config.n_critic} batch(es) a step "
            "reads); resuming would feed the wrong batches"
        )
    if extra:
        state = state.replace(models={r: m for r, m in state.models.items() if r in wanted})
    return state, meta


def restore_training_state(workdir: str | os.PathLike, step: int | None = None):
    """(config, TrainState on one device, step) from a training workdir's latest (or given)
    checkpoint."""
    from jaxgan.state import enable_precision

    info = run_info.read_run_info(workdir)
    if info is None:
        raise checkpoint.CheckpointError(
            f"{workdir}: not a training workdir (no {run_info.RUN_FILE})"
        )
    config = info["config"]
    enable_precision(config)
    checkpoints = checkpoint.Checkpoints(workdir, keep=config.keep_checkpoints, async_save=False)
    step = checkpoints.latest_step() if step is None else step
    if step is None:
        raise checkpoint.CheckpointError(f"{workdir}: the workdir holds no complete checkpoint yet")
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    state, _ = restore_state(checkpoints, step, config, device)
    checkpoints.close()
    return config, state, step


def load_variables(
    path: str | os.PathLike, model: str, use_ema: bool = True, hint: str = ""
) -> tuple[dict[str, Any], Any, Config | None]:
    """(arch, variables, config or None) of `model` ("generator", "restorer", "discriminator") from
    a training workdir (its latest checkpoint; the sampled model's EMA params when the run keeps an
    EMA and `use_ema`) or from a converted model folder. Another model there is an error naming both
    (and `hint`)."""
    from jaxgan.state import sampled_variables
    from jaxgan.tasks import get_task

    path = Path(path)
    if run_info.is_workdir(path):
        saved = run_info.read_run_info(path)["config"]
        task = get_task(saved.task)
        if model not in task.roles_for(saved):
            raise checkpoint.CheckpointError(
                f"{path} holds a '{task.name}' run ({' and '.join(task.roles_for(saved))}), "
                f"not a {model}{hint}"
            )
        config, state, _ = restore_training_state(path)
        variables = (
            sampled_variables(state, config, use_ema)
            if model == task.sampled
            else state.models[model].variables()
        )
        return task.arch(config, model), jax.device_get(variables), config
    if not path.is_dir():
        raise checkpoint.CheckpointError(f"{path}: no such training workdir or model folder")
    arch, variables = model_folder.load_model(path)
    from jaxgan.convert import role_of

    if role_of(arch) != model:
        raise checkpoint.CheckpointError(f"{path} holds a {arch.get('model')}, not a {model}{hint}")
    return dict(arch), variables, None
