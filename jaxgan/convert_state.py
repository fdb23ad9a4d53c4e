"""Whole training states between jaxgan (`TrainState`) and `torch_ref/train.py` checkpoints, both ways.

A torch_ref checkpoint is one dict of plain values and tensors, so `torch.load(weights_only=True)` reads it:

    generator, discriminator, ema_generator     model state dicts (the EMA generator's buffers are the
                                                live generator's, as jaxgan samples with them)
    generator_optimizer, discriminator_optimizer  `torch.optim.Adam.state_dict()`: per-parameter step,
                                                exp_avg, exp_avg_sq in PyTorch's parameter order
    step, data_position, seeds, config, format, format_version

Models go through `jaxgan.convert`'s tables; Adam's moments go through the same tables (parameter i of
PyTorch's `parameters()` is the i-th `params` entry of the table, which is in `state_dict` order). Every
key on either side is used once, shapes are checked, and jax -> torch -> jax is bit for bit.
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

from jaxgan import checkpoint
from jaxgan import config as config_lib
from jaxgan.atomic import atomic_path, check_writable
from jaxgan.convert import LAYOUTS, ConversionError, Entry, flax_to_torch, table, torch_to_flax
from jaxgan.state import (ModelState, TrainState, discriminator_arch, enable_precision, generator_arch, init_state,
                          make_models)

FORMAT, FORMAT_VERSION = "jaxgan.torch_ref", 1
MODEL_KEYS = ("generator", "discriminator", "ema_generator")
OPTIMIZER_KEYS = ("generator_optimizer", "discriminator_optimizer")
CHECKPOINT_KEYS = ("format", "format_version", "step", "data_position", "seeds", "config") + MODEL_KEYS + OPTIMIZER_KEYS
MOMENTS = (("exp_avg", "mu"), ("exp_avg_sq", "nu"))  # PyTorch name, optax name
# Adam settings that change the update; they must be these values (jaxgan's Adam has no such options).
NEUTRAL_SETTINGS = {"weight_decay": 0, "amsgrad": False, "maximize": False, "decoupled_weight_decay": False}


def parameter_entries(arch: Mapping[str, Any]) -> list[Entry]:
    """The table entries of trainable parameters, in PyTorch's `parameters()` (= optimiser) order."""
    return [entry for entry in table(arch) if entry.flax_path[0] == "params"]


def _shortest(value: Any) -> float:
    """A stored hyperparameter as the shortest decimal that rounds back to it (float32 2e-4 -> 2e-4)."""
    return float(np.format_float_positional(np.asarray(value)[()], unique=True))


# --- Adam ------------------------------------------------------------------------------------------------


def adam_to_torch(arch: Mapping[str, Any], model: ModelState) -> dict[str, Any]:
    """A jaxgan model's optax Adam state -> `torch.optim.Adam.state_dict()` (numpy leaves)."""
    adam, hyperparams = model.opt_state.inner_state[0], model.opt_state.hyperparams
    if float(hyperparams["eps_root"]) != 0:
        raise ConversionError(f"Adam eps_root = {float(hyperparams['eps_root'])}: PyTorch's Adam has no eps_root")
    count = int(adam.count)
    moments = {}
    for torch_name, optax_name in MOMENTS:
        variables = {"params": getattr(adam, optax_name), "batch_stats": model.batch_stats}
        try:
            moments[torch_name] = flax_to_torch(arch, variables)
        except ConversionError as error:
            raise ConversionError(f"Adam {optax_name}: {error}") from None
    state = {}
    for index, entry in enumerate(parameter_entries(arch)):
        state[index] = {"step": np.asarray(count, np.float32),
                        **{name: moments[name][entry.torch_key] for name, _ in MOMENTS}}
    group = {"lr": _shortest(hyperparams["learning_rate"]),
             "betas": (_shortest(hyperparams["b1"]), _shortest(hyperparams["b2"])),
             "eps": _shortest(hyperparams["eps"]), "weight_decay": 0.0, "amsgrad": False, "maximize": False,
             "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "params": list(range(len(state)))}
    return {"state": state, "param_groups": [group]}


def adam_to_flax(arch: Mapping[str, Any], optimizer: Mapping[str, Any], template: Any, step: int,
                 batch_stats: Any, what: str) -> Any:
    """`torch.optim.Adam.state_dict()` -> an optax Adam state shaped like `template` (dtypes kept)."""
    entries = parameter_entries(arch)
    _check_keys(optimizer, ("state", "param_groups"), what)
    groups = optimizer["param_groups"]
    if len(groups) != 1:
        raise ConversionError(f"{what}: {len(groups)} parameter groups; jaxgan's Adam has one")
    group = groups[0]
    if list(group.get("params", [])) != list(range(len(entries))):
        raise ConversionError(f"{what}: param_groups[0]['params'] is {group.get('params')}, expected the "
                              f"{len(entries)} parameters 0..{len(entries) - 1} of a {arch['model']}")
    for name, neutral in NEUTRAL_SETTINGS.items():
        if group.get(name, neutral) != neutral:
            raise ConversionError(f"{what}: Adam setting {name} = {group[name]!r}; jaxgan's Adam needs {neutral!r}")
    for name in ("lr", "betas", "eps"):
        if name not in group:
            raise ConversionError(f"{what}: param_groups[0] has no {name!r} (keys: {sorted(group)})")
    states = optimizer["state"]
    if not states and step == 0:  # a fresh optimiser keeps no state: zero moments, count 0
        zeros = {e.torch_key: np.zeros(_torch_shape(template, e), _dtype(template)) for e in entries}
        states = {i: {"step": 0, "exp_avg": zeros[e.torch_key], "exp_avg_sq": zeros[e.torch_key]}
                  for i, e in enumerate(entries)}
    if sorted(states) != list(range(len(entries))):
        raise ConversionError(f"{what}: state for parameters {sorted(states)}; expected 0..{len(entries) - 1}")
    moments = {name: {} for name, _ in MOMENTS}
    for index, entry in enumerate(entries):
        where = f"{what} state[{index}] ({entry.torch_key})"
        _check_keys(states[index], ("step", "exp_avg", "exp_avg_sq"), where)
        if float(states[index]["step"]) != step:
            raise ConversionError(f"{where}: Adam step {float(states[index]['step'])}, but the checkpoint is at "
                                  f"step {step}; jaxgan keeps one step count per model")
        for name, _ in MOMENTS:
            moments[name][entry.torch_key] = states[index][name]
    inner = template.inner_state[0]
    fields = {}
    for torch_name, optax_name in MOMENTS:
        state_dict = {**batch_stats, **moments[torch_name]}  # buffers complete the table; only params are kept
        try:
            fields[optax_name] = torch_to_flax(arch, state_dict)["params"]
        except ConversionError as error:
            raise ConversionError(f"{what} {torch_name}: {error}") from None
    count = jnp.asarray(step, inner.count.dtype)
    dtype = template.hyperparams["learning_rate"].dtype
    hyperparams = dict(template.hyperparams, learning_rate=jnp.asarray(group["lr"], dtype),
                       b1=jnp.asarray(group["betas"][0], dtype), b2=jnp.asarray(group["betas"][1], dtype),
                       eps=jnp.asarray(group["eps"], dtype))
    adam = inner._replace(count=count, **_cast_like(fields, {"mu": inner.mu, "nu": inner.nu}, what))
    return template._replace(count=count, hyperparams=hyperparams, inner_state=(adam,) + template.inner_state[1:])


def _torch_shape(template: Any, entry: Entry) -> tuple:
    shape = traverse_util.flatten_dict(template.inner_state[0].mu)[entry.flax_path[1:]].shape
    axes = LAYOUTS[entry.layout][1]
    return tuple(shape[a] for a in axes) if axes else shape


def _dtype(template: Any) -> np.dtype:
    return np.dtype(jax.tree.leaves(template.inner_state[0].mu)[0].dtype)


# --- whole states ----------------------------------------------------------------------------------------


def state_to_torch(config: config_lib.Config, state: TrainState) -> dict[str, Any]:
    """A jaxgan TrainState -> a torch_ref checkpoint dict (numpy leaves; see `save_torch_checkpoint`)."""
    _check_derived(config, state)
    generator_stats = state.generator.batch_stats
    models = {"generator": (generator_arch(config), state.generator),
              "discriminator": (discriminator_arch(config), state.discriminator)}
    step = int(state.step)
    result = {"format": FORMAT, "format_version": FORMAT_VERSION, "step": step, "data_position": step,
              "seeds": {"seed": config.seed, "data_seed": config.resolved_data_seed}, "config": config.to_dict()}
    for name, (arch, model) in models.items():
        result[name] = flax_to_torch(arch, {"params": model.params, "batch_stats": model.batch_stats})
        result[f"{name}_optimizer"] = adam_to_torch(arch, model)
        if int(model.opt_state.inner_state[0].count) != step:
            raise ConversionError(f"the {name}'s Adam count {int(model.opt_state.inner_state[0].count)} differs "
                                  f"from the state's step {step}")
    result["ema_generator"] = flax_to_torch(generator_arch(config), {"params": state.ema_params,
                                                                     "batch_stats": generator_stats})
    return result


def state_from_torch(checkpoint_dict: Mapping[str, Any], source: str = "checkpoint") -> tuple[
        config_lib.Config, TrainState]:
    """A torch_ref checkpoint dict (tensors or numpy) -> (config, jaxgan TrainState) that resumes it exactly.

    Turns on 64-bit JAX for float64 runs (as loading a float64 workdir does).
    """
    values = checkpoint_to_numpy(checkpoint_dict)
    _check_keys(values, CHECKPOINT_KEYS, source)
    if values["format"] != FORMAT or values["format_version"] != FORMAT_VERSION:
        raise ConversionError(f"{source}: format {values['format']!r} version {values['format_version']}; "
                              f"this jaxgan reads {FORMAT!r} version {FORMAT_VERSION}")
    config = config_lib.from_dict(values["config"], source=f"{source} config")
    step, position = int(values["step"]), int(values["data_position"])
    if position != step:
        raise ConversionError(f"{source}: data position {position} differs from step {step}; jaxgan's data "
                              "position is the step (one global batch per step)")
    seeds = {"seed": config.seed, "data_seed": config.resolved_data_seed}
    if dict(values["seeds"]) != seeds:
        raise ConversionError(f"{source}: seeds {values['seeds']} do not match its config's {seeds}")
    enable_precision(config)
    fresh = _fresh_state(config)  # settings, rng and the exact pytree layout
    archs = {"generator": generator_arch(config), "discriminator": discriminator_arch(config)}
    models = {}
    for name, arch in archs.items():
        variables = _convert_model(arch, values[name], f"{source} {name}")
        template = getattr(fresh, name)
        opt_state = adam_to_flax(arch, values[f"{name}_optimizer"], template.opt_state, step,
                                 _buffers(arch, values[name]), f"{source} {name}_optimizer")
        cast = _cast_like(variables, {"params": template.params, "batch_stats": template.batch_stats},
                          f"{source} {name}")
        models[name] = ModelState(cast["params"], cast["batch_stats"], opt_state)
    ema = _convert_model(archs["generator"], values["ema_generator"], f"{source} ema_generator")
    _check_same_buffers(values["ema_generator"], values["generator"], archs["generator"], source)
    state = fresh.replace(step=jnp.asarray(step, fresh.step.dtype), generator=models["generator"],
                          discriminator=models["discriminator"],
                          ema_params=_cast_like(ema["params"], fresh.ema_params, f"{source} ema_generator"))
    return config, state


def _convert_model(arch: Mapping[str, Any], state_dict: Mapping[str, Any], what: str) -> dict:
    try:
        return torch_to_flax(arch, state_dict)
    except ConversionError as error:
        raise ConversionError(f"{what}: {error}") from None


def _buffers(arch: Mapping[str, Any], state_dict: Mapping[str, Any]) -> dict[str, Any]:
    keys = {entry.torch_key for entry in table(arch) if entry.flax_path[0] != "params"}
    return {k: v for k, v in state_dict.items() if k in keys}


def _check_same_buffers(ema: Mapping[str, Any], live: Mapping[str, Any], arch: Mapping[str, Any], source: str):
    """jaxgan keeps one set of generator statistics: the EMA generator's buffers must be the live ones."""
    for key, value in _buffers(arch, ema).items():
        if key in live and not np.array_equal(value, live[key]):
            raise ConversionError(f"{source}: ema_generator buffer {key!r} differs from the generator's; jaxgan "
                                  "samples the EMA parameters with the live generator's BatchNorm statistics")


def _cast_like(tree: Any, template: Any, what: str) -> Any:
    """numpy leaves -> jax arrays of the template's dtypes; a floating dtype change is an error."""
    def cast(path, value, like):
        value = np.asarray(value)
        if np.issubdtype(value.dtype, np.floating) and value.dtype != like.dtype:
            name = "/".join(str(getattr(k, "key", k)) for k in path)
            raise ConversionError(f"{what} {name}: dtype {value.dtype}, but the config's run keeps {like.dtype}")
        return jnp.asarray(value, like.dtype)

    return jax.tree_util.tree_map_with_path(cast, tree, template)


def _fresh_state(config: config_lib.Config) -> TrainState:
    return jax.jit(lambda: init_state(config, make_models(config)))()


def _check_derived(config: config_lib.Config, state: TrainState) -> None:
    """Settings and rng are derived from the config (a torch_ref checkpoint keeps the config, not them): they
    must be what the config gives, or they would be lost."""
    derived = jax.jit(lambda: (lambda s: (s.settings, s.rng))(init_state(config, make_models(config))))()
    if jax.tree.structure(jax.eval_shape(lambda: init_state(config, make_models(config)))) != jax.tree.structure(
            state):
        raise ConversionError("the training state does not have the layout of its config's run")
    for name, value in state.settings.items():
        if float(value) != float(derived[0][name]):
            raise ConversionError(f"the state's setting {name} = {float(value)} differs from its config's "
                                  f"{getattr(config, name)}")
    if not np.array_equal(np.asarray(state.rng), np.asarray(derived[1])):
        raise ConversionError("the state's rng is not the one its config's seed gives; it would be lost")


def _check_keys(mapping: Mapping[str, Any], expected: tuple, what: str) -> None:
    missing, unexpected = sorted(set(expected) - set(mapping)), sorted(set(mapping) - set(expected), key=str)
    if missing or unexpected:
        raise ConversionError(f"{what}: " + "; ".join(
            part for part in (f"missing {missing}" if missing else "",
                              f"unexpected {unexpected}" if unexpected else "") if part))


# --- files and workdirs ----------------------------------------------------------------------------------


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
    """numpy arrays anywhere in a checkpoint dict -> CPU tensors (copies; what `torch.save` writes)."""
    if isinstance(value, np.ndarray):
        from jaxgan.torch_files import numpy_to_tensor

        return numpy_to_tensor(value.copy())  # never shared: optimisers load state without copying
    if isinstance(value, Mapping):
        return {k: checkpoint_to_tensors(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(checkpoint_to_tensors(v) for v in value)
    return value


def save_torch_checkpoint(checkpoint_dict: Mapping[str, Any], path: str | os.PathLike, force: bool = False) -> Path:
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
        raise ConversionError(f"{path}: not a torch_ref training checkpoint (found {keys}); a single model's "
                              "state dict converts with `convert.py torch2jax --model ...`")
    return checkpoint_to_numpy(value)


def write_workdir(workdir: str | os.PathLike, config: config_lib.Config, state: TrainState, force: bool = False,
                  notes: dict | None = None) -> Path:
    """A jaxgan workdir (run.json + one orbax checkpoint at the state's step) that `scripts/train.py` resumes."""
    workdir = check_writable(workdir, force)
    step = int(state.step)
    with atomic_path(workdir, directory=True) as temporary:
        checkpoint.write_run_info(temporary, config, notes)
        checkpoints = checkpoint.Checkpoints(temporary, keep=config.keep_checkpoints, async_save=False)
        checkpoints.save(step, state, {"data_position": step, "skipped_examples": 0})
        checkpoints.wait()
        checkpoints.close()
    return workdir
