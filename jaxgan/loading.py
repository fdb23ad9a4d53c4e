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


def restore_training_state(workdir: str | os.PathLike, step: int | None = None):
    """(config, TrainState on one device, step) from a training workdir's latest (or given)
    checkpoint."""
    from jaxgan.state import enable_precision, init_state, make_modules

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
    shapes = jax.eval_shape(functools.partial(init_state, config, make_modules(config)))
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    state, _ = checkpoints.restore(step, checkpoint.abstract_like(shapes, device))
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
        task = get_task(run_info.read_run_info(path)["config"].task)
        if model not in task.roles:
            raise checkpoint.CheckpointError(
                f"{path} holds a '{task.name}' run ({' and '.join(task.roles)}), "
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
    if arch.get("model") != model:
        raise checkpoint.CheckpointError(f"{path} holds a {arch.get('model')}, not a {model}{hint}")
    return dict(arch), variables, None
