"""Whole training states between jaxgan (`TrainState`) and `torch_ref/train.py` checkpoints, both
ways.

A torch_ref checkpoint is one dict of plain values and tensors, so `torch.load(weights_only=True)`
reads it:

    generator, discriminator, ema_generator       model state dicts (the EMA generator's buffers are
                                                  the live generator's: jaxgan samples the EMA with
                                                  them)
    generator_optimizer, discriminator_optimizer  `torch.optim.Adam.state_dict()`: per-parameter
                                                  step, exp_avg, exp_avg_sq, in PyTorch's parameter
                                                  order
    step, data_position, seeds, config, format, format_version

Models go through `jaxgan.convert`'s tables, and so do Adam's moments: parameter i of PyTorch's
`parameters()` is the i-th `params` entry of the table (which is in `state_dict` order). Every key
on either side is used once, shapes and dtypes are checked, and jax -> torch -> jax is bit for bit.
What the torch side does not hold (the EMA decay and other settings, the rng) is derived from the
config.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxgan import checkpoint, run_info
from jaxgan import config as config_lib
from jaxgan.atomic import atomic_path, check_writable
from jaxgan.convert import (
    LAYOUTS,
    ConversionError,
    Entry,
    check_keys,
    flax_to_torch,
    table,
    torch_to_flax,
)
from jaxgan.state import ModelState, TrainState, enable_precision, init_state, make_modules
from jaxgan.tasks import get_task

FORMAT, FORMAT_VERSION = "jaxgan.torch_ref", 1
MODELS = ("generator", "discriminator")
CHECKPOINT_KEYS = (
    "format",
    "format_version",
    "step",
    "data_position",
    "seeds",
    "config",
    "generator",
    "discriminator",
    "ema_generator",
    "generator_optimizer",
    "discriminator_optimizer",
)
MOMENTS = (("exp_avg", "mu"), ("exp_avg_sq", "nu"))  # PyTorch's name, optax's name
ADAM_STATE_KEYS = ("step", "exp_avg", "exp_avg_sq")
# Adam options that change the update: jaxgan's Adam has none of them, so they must be off.
NEUTRAL_SETTINGS = {
    "weight_decay": 0,
    "amsgrad": False,
    "maximize": False,
    "decoupled_weight_decay": False,
}


def parameter_entries(arch: Mapping[str, Any]) -> list[Entry]:
    """The table entries of trainable parameters, in PyTorch's `parameters()` (= optimiser)
    order."""
    return [entry for entry in table(arch) if entry.flax_path[0] == "params"]


# --- Adam -----------------------------------------------------------------------------------------


def adam_to_torch(arch: Mapping[str, Any], model: ModelState) -> dict[str, Any]:
    """A jaxgan model's optax Adam state -> `torch.optim.Adam.state_dict()` (numpy leaves)."""
    adam, hyperparams = model.opt_state.inner_state[0], model.opt_state.hyperparams
    if float(hyperparams["eps_root"]) != 0:
        raise ConversionError(
            f"Adam eps_root = {float(hyperparams['eps_root'])}: PyTorch's Adam has no eps_root"
        )
    moments = {}
    for torch_name, optax_name in MOMENTS:
        try:  # the model's own buffers complete the table; only the parameters' entries are kept
            moments[torch_name] = flax_to_torch(arch, model.variables(getattr(adam, optax_name)))
        except ConversionError as error:
            raise ConversionError(f"Adam {optax_name}: {error}") from None
    step = np.asarray(
        int(adam.count), np.float32
    )  # PyTorch keeps each parameter's step as a float tensor
    state = {
        index: {
            "step": step.copy(),
            **{name: moments[name][entry.torch_key] for name, _ in MOMENTS},
        }
        for index, entry in enumerate(parameter_entries(arch))
    }
    group = {
        "lr": _shortest(hyperparams["learning_rate"]),
        "betas": (_shortest(hyperparams["b1"]), _shortest(hyperparams["b2"])),
        "eps": _shortest(hyperparams["eps"]),
        "weight_decay": 0.0,
        "amsgrad": False,
        "maximize": False,
        "foreach": None,
        "capturable": False,
        "differentiable": False,
        "fused": None,
        "params": list(range(len(state))),
    }
    return {"state": state, "param_groups": [group]}


def adam_to_flax(
    arch: Mapping[str, Any],
    optimizer: Mapping[str, Any],
    layout: Any,
    hyperparams: Mapping[str, Any],
    step: int,
    buffers: Mapping[str, Any],
    what: str,
) -> Any:
    """`torch.optim.Adam.state_dict()` -> optax's Adam state with `layout`'s structure and dtypes,
    after `step` Adam steps (`updates`).

    `hyperparams` supplies what PyTorch does not keep (eps_root); `buffers` (the model's) complete
    the table.
    """
    entries = parameter_entries(arch)
    _check_keys(optimizer, ("state", "param_groups"), what)
    group = _adam_group(optimizer["param_groups"], len(entries), arch, what)
    states = optimizer["state"]
    if not states and step == 0:  # a fresh PyTorch optimiser keeps no state: zero moments
        states = {
            i: {
                "step": 0,
                **{
                    name: np.zeros(_torch_shape(layout, e), _moment_dtype(layout))
                    for name, _ in MOMENTS
                },
            }
            for i, e in enumerate(entries)
        }
    if sorted(states) != list(range(len(entries))):
        raise ConversionError(
            f"{what}: state for parameters {sorted(states)}; expected 0..{len(entries) - 1}"
        )
    moments = {name: {} for name, _ in MOMENTS}
    for index, entry in enumerate(entries):
        where = f"{what} state[{index}] ({entry.torch_key})"
        _check_keys(states[index], ADAM_STATE_KEYS, where)
        if float(states[index]["step"]) != step:
            raise ConversionError(
                f"{where}: Adam step {float(states[index]['step'])}, but the model has taken "
                f"{step} updates by the checkpoint's step; jaxgan keeps one step count per model"
            )
        for name, _ in MOMENTS:
            moments[name][entry.torch_key] = states[index][name]
    inner = layout.inner_state[0]
    converted = {}
    for torch_name, optax_name in MOMENTS:
        try:
            converted[optax_name] = torch_to_flax(arch, {**buffers, **moments[torch_name]})[
                "params"
            ]
        except ConversionError as error:
            raise ConversionError(f"{what} {torch_name}: {error}") from None
    converted = _cast_like(converted, {"mu": inner.mu, "nu": inner.nu}, what)
    values = dict(
        hyperparams,
        learning_rate=group["lr"],
        b1=group["betas"][0],
        b2=group["betas"][1],
        eps=group["eps"],
    )
    _check_keys(values, tuple(layout.hyperparams), f"{what} hyperparameters")
    cast = {
        name: jnp.asarray(value, layout.hyperparams[name].dtype) for name, value in values.items()
    }
    adam = inner._replace(count=jnp.asarray(step, inner.count.dtype), **converted)
    return layout._replace(
        count=jnp.asarray(step, layout.count.dtype),
        hyperparams=cast,  # two buffers: donatable
        inner_state=(adam,) + tuple(layout.inner_state[1:]),
    )


def _adam_group(groups: list, count: int, arch: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The one parameter group, checked: all `count` parameters, and no option jaxgan's Adam
    lacks."""
    if len(groups) != 1:
        raise ConversionError(f"{what}: {len(groups)} parameter groups; jaxgan's Adam has one")
    group = groups[0]
    if list(group.get("params", [])) != list(range(count)):
        raise ConversionError(
            f"{what}: param_groups[0]['params'] is {group.get('params')}, expected the "
            f"{count} parameters 0..{count - 1} of a {arch['model']}"
        )
    for name, neutral in NEUTRAL_SETTINGS.items():
        if group.get(name, neutral) != neutral:
            raise ConversionError(
                f"{what}: Adam option {name} = {group[name]!r}; jaxgan's Adam needs {neutral!r}"
            )
    for name in ("lr", "betas", "eps"):
        if name not in group:
            raise ConversionError(
                f"{what}: param_groups[0] has no {name!r} (keys: {sorted(group)})"
            )
    return group


def _torch_shape(layout: Any, entry: Entry) -> tuple:
    shape = traverse_util.flatten_dict(layout.inner_state[0].mu)[entry.flax_path[1:]].shape
    axes = LAYOUTS[entry.layout][1]
    return tuple(shape[a] for a in axes) if axes else shape


def _moment_dtype(layout: Any) -> np.dtype:
    return np.dtype(jax.tree.leaves(layout.inner_state[0].mu)[0].dtype)


def _shortest(value: Any) -> float:
    """A stored hyperparameter as the shortest decimal that rounds back to it (float32 2e-4 ->
    2e-4)."""
    return float(np.format_float_positional(np.asarray(value)[()], unique=True))


# --- whole states ---------------------------------------------------------------------------------


def run_layout(config: config_lib.Config) -> tuple[TrainState, dict[str, Any]]:
    """(shapes and dtypes of the run's TrainState, the values derived from the config alone:
    settings, rng and each model's Adam hyperparameters), without initialising the models (XLA drops
    the unused work)."""
    modules = make_modules(config)

    def derived():
        state = init_state(config, modules)
        return {
            "settings": state.settings,
            "rng": state.rng,
            **{name: state.models[name].opt_state.hyperparams for name in MODELS},
        }

    return jax.eval_shape(lambda: init_state(config, modules)), jax.jit(derived)()


def _check_task(config: config_lib.Config, source: str) -> None:
    if not get_task(config.task).torch_reference:
        raise ConversionError(
            f"{source}: a {config.task!r} run; torch_ref/train.py is the DCGAN loop (task 'gan'), "
            "so only GAN runs move between the frameworks"
        )


def state_to_torch(config: config_lib.Config, state: TrainState) -> dict[str, Any]:
    """A jaxgan TrainState -> a torch_ref checkpoint dict (numpy leaves; see
    `save_torch_checkpoint`)."""
    _check_task(config, "the training state")
    layout, derived = run_layout(config)
    if jax.tree.structure(layout) != jax.tree.structure(state):
        raise ConversionError(
            f"the training state does not have the layout of its config's run "
            f"({jax.tree.structure(state)} vs {jax.tree.structure(layout)})"
        )
    for name in (
        "settings",
        "rng",
    ):  # the torch side keeps the config, not these: they must follow from it
        for (path, value), expected in zip(
            jax.tree_util.tree_leaves_with_path(getattr(state, name)),
            jax.tree.leaves(derived[name]),
        ):
            if not np.array_equal(np.asarray(value), np.asarray(expected)):
                raise ConversionError(
                    f"the state's {name}{jax.tree_util.keystr(path)} = {np.asarray(value)} is not "
                    f"what its config gives ({np.asarray(expected)}); it would be lost"
                )
    step = int(state.step)
    result = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": step,
        "data_position": config.data_position(step),
        "seeds": {"seed": config.seed, "data_seed": config.resolved_data_seed},
        "config": config.to_dict(),
    }
    archs = {name: get_task(config.task).arch(config, name) for name in MODELS}
    for name, arch in archs.items():
        model = state.models[name]
        count, expected = int(model.opt_state.inner_state[0].count), updates(config, name, step)
        if count != expected:
            raise ConversionError(
                f"the {name}'s Adam count {count} differs from its {expected} updates by the "
                f"state's step {step}"
            )
        result[name] = flax_to_torch(arch, model.variables())
        result[f"{name}_optimizer"] = adam_to_torch(arch, model)
    result["ema_generator"] = flax_to_torch(
        archs["generator"], state.models["generator"].variables(state.ema_params)
    )
    return result


def updates(config: config_lib.Config, name: str, step: int) -> int:
    """Adam steps model `name` has taken by training step `step`: D takes n_critic a step."""
    return config.data_position(step) if name == "discriminator" else step


def state_from_torch(
    checkpoint_dict: Mapping[str, Any], source: str = "checkpoint"
) -> tuple[config_lib.Config, TrainState]:
    """A torch_ref checkpoint dict (tensors or numpy) -> (config, jaxgan TrainState) that continues
    it exactly.

    Turns on JAX's 64-bit mode for float64 runs, as loading a float64 workdir does.
    """
    values = checkpoint_to_numpy(checkpoint_dict)
    _check_keys(values, CHECKPOINT_KEYS, source)
    if values["format"] != FORMAT or values["format_version"] != FORMAT_VERSION:
        raise ConversionError(
            f"{source}: format {values['format']!r} version {values['format_version']}; "
            f"this jaxgan reads {FORMAT!r} version {FORMAT_VERSION}"
        )
    config = config_lib.from_dict(values["config"], source=f"{source} config")
    _check_task(config, source)
    step, position = int(values["step"]), int(values["data_position"])
    if position != config.data_position(step):
        raise ConversionError(
            f"{source}: data position {position} differs from {config.data_position(step)}, "
            f"the step {step} times the {config.n_critic} batch(es) a step reads"
        )
    seeds = {"seed": config.seed, "data_seed": config.resolved_data_seed}
    if dict(values["seeds"]) != seeds:
        raise ConversionError(
            f"{source}: seeds {values['seeds']} do not match its config's {seeds}"
        )
    enable_precision(config)
    layout, derived = run_layout(config)
    archs = {name: get_task(config.task).arch(config, name) for name in MODELS}
    models = {}
    for name, arch in archs.items():
        variables = _convert_model(arch, values[name], f"{source} {name}")
        model_layout = layout.models[name]
        opt_state = adam_to_flax(
            arch,
            values[f"{name}_optimizer"],
            model_layout.opt_state,
            derived[name],
            updates(config, name, step),
            _buffers(arch, values[name]),
            f"{source} {name}_optimizer",
        )
        variables = _cast_like(variables, model_layout.variables(), f"{source} {name}")
        params = variables.pop("params")
        models[name] = ModelState(params, variables, opt_state)
    ema = _convert_model(archs["generator"], values["ema_generator"], f"{source} ema_generator")
    for key, value in _buffers(archs["generator"], values["ema_generator"]).items():
        if not np.array_equal(value, values["generator"][key]):
            raise ConversionError(
                f"{source}: ema_generator buffer {key!r} differs from the generator's; jaxgan "
                "samples the EMA parameters with the live generator's BatchNorm statistics"
            )
    state = TrainState(
        step=jnp.asarray(step, layout.step.dtype),
        models=models,
        ema_params=_cast_like(ema["params"], layout.ema_params, f"{source} ema_generator"),
        settings=derived["settings"],
        rng=derived["rng"],
    )
    return config, state


def _convert_model(arch: Mapping[str, Any], state_dict: Mapping[str, Any], what: str) -> dict:
    try:
        return torch_to_flax(arch, state_dict)
    except ConversionError as error:
        raise ConversionError(f"{what}: {error}") from None


def _buffers(arch: Mapping[str, Any], state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The BatchNorm buffers of a state dict (what Adam's moments lack to fill the model's
    table)."""
    keys = {entry.torch_key for entry in table(arch) if entry.flax_path[0] != "params"}
    return {k: v for k, v in state_dict.items() if k in keys}


def _cast_like(tree: Any, layout: Any, what: str) -> Any:
    """numpy leaves -> jax arrays of the layout's dtypes; a floating dtype that differs is an
    error."""

    def cast(path, value, like):
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.floating) and value.dtype != like.dtype:
            raise ConversionError(
                f"{what} {jax.tree_util.keystr(path)}: dtype {value.dtype}, but the config's run "
                f"keeps {like.dtype} (its dtype field)"
            )
        return jnp.asarray(value, like.dtype)

    return jax.tree_util.tree_map_with_path(cast, tree, layout)


def _check_keys(mapping: Mapping[str, Any], expected: tuple, what: str) -> None:
    check_keys(set(expected), set(mapping), what)


# --- files and workdirs ---------------------------------------------------------------------------


def checkpoint_to_numpy(value: Any) -> Any:
    """Tensors anywhere in a checkpoint dict -> numpy arrays (dicts, lists and tuples kept)."""
    if hasattr(value, "detach"):
        from jaxgan.torch_files import tensor_to_numpy

        return tensor_to_numpy(value)
    if isinstance(value, Mapping):
        return {k: checkpoint_to_numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(checkpoint_to_numpy(v) for v in value)
    return value


def checkpoint_to_tensors(value: Any) -> Any:
    """numpy arrays anywhere in a checkpoint dict -> CPU tensors (copies; what `torch.save`
    writes)."""
    if isinstance(value, np.ndarray):
        from jaxgan.torch_files import numpy_to_tensor

        return numpy_to_tensor(
            value.copy()
        )  # never shared: optimisers load their state without copying
    if isinstance(value, Mapping):
        return {k: checkpoint_to_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(checkpoint_to_tensors(v) for v in value)
    return value


def save_torch_checkpoint(
    checkpoint_dict: Mapping[str, Any], path: str | os.PathLike, force: bool = False
) -> Path:
    """Write a torch_ref checkpoint atomically (never over an existing file without `force`)."""
    from jaxgan.torch_files import require_torch

    path = check_writable(path, force)
    torch = require_torch(path)
    with atomic_path(path) as temporary:
        torch.save(checkpoint_to_tensors(checkpoint_dict), temporary)
    return path


def load_torch_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A torch_ref checkpoint as numpy arrays, read with `weights_only=True`."""
    from jaxgan.torch_files import read_file

    value = read_file(path)
    if not isinstance(value, Mapping) or "format" not in value:
        keys = list(value) if isinstance(value, Mapping) else type(value).__name__
        raise ConversionError(
            f"{path}: not a torch_ref training checkpoint (found {keys}); one model's state dict "
            "converts with `convert.py torch2jax --model ...`"
        )
    return checkpoint_to_numpy(value)


def write_workdir(
    workdir: str | os.PathLike,
    config: config_lib.Config,
    state: TrainState,
    force: bool = False,
    notes: dict | None = None,
) -> Path:
    """A jaxgan workdir (run.json and one orbax checkpoint at the state's step) that
    `scripts/train.py` resumes."""
    workdir = check_writable(workdir, force)
    step = int(state.step)
    with atomic_path(workdir, directory=True) as temporary:
        run_info.write_run_info(temporary, config, notes)
        checkpoints = checkpoint.Checkpoints(
            temporary, keep=config.keep_checkpoints, async_save=False
        )
        checkpoints.save(
            step, state, {"data_position": config.data_position(step), "skipped_examples": 0}
        )
        checkpoints.wait()
        checkpoints.close()
    return workdir
