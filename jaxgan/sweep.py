"""Sweeps: K runs (seeds, learning rates, ...) stacked on a leading axis and trained by one compiled
step.

Run k of a sweep is the single run with its settings: the swept values are arrays of the stacked
`TrainState` (Adam's hyperparameters live in its state, EMA decay and loss weights in `settings`,
the seed in its weights and RNG) or choose host data (each run's batches and latents), never
compile-time constants, so one compilation serves the sweep. Fields that change shapes or the
compiled program cannot be swept. The step is `jax.vmap` of the single-run step or a loop of the
runs through one compiled single-run program, chosen per backend by measurement (docs/sweeps.md).
The training loop is `jaxgan.sweep_train`.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from jax.sharding import Mesh

from jaxgan import config as config_lib
from jaxgan import sharding
from jaxgan.config import Config, ConfigError
from jaxgan.state import ADAM_FIELDS, Modules, TrainState, init_state, param_dtype
from jaxgan.tasks import TASK_MODULES, get_task

SWEEPABLE = (
    *("seed", "data_seed", "lr", "beta1", "beta2", "ema_decay", "lambda_rec", "lambda_adv"),
    *("r1_gamma", "gradient_penalty"),
    *ADAM_FIELDS,
)
# Penalties whose term the base config must compile in (nonzero) for its runs to vary the weight.
PENALTIES = ("r1_gamma", "gradient_penalty")
SHAPE_FIELDS = (
    "image_size",
    "nc",
    "nz",
    "ngf",
    "ndf",
    "restorer",
    "restorer_width",
    "restorer_blocks",
    "restorer_unshuffle",
    "restorer_batchnorm",
    "restorer_skips",
    "batch_size",
)
DATA_FIELDS = ("data", "data_split")
INIT_FIELDS = (
    "seed",
    "lr",
    "beta1",
    "beta2",
    "ema_decay",
    "lambda_rec",
    "lambda_adv",
    "r1_gamma",
    "gradient_penalty",
    *ADAM_FIELDS,
)  # what init_state reads
MODES = ("auto", "vmap", "loop")
MAX_SEED = 2**31 - 1  # seeds travel as int32 arrays into the one compiled init


class SweepError(ConfigError):
    """A sweep that cannot run as given: the message names the field, run or file."""


def unsweepable_reason(name: str) -> str | None:
    """Why `name` cannot be swept, or None when it can."""
    if name in SWEEPABLE:
        return None
    if name not in config_lib.FIELDS:
        return f"is not a config field (sweepable fields: {', '.join(SWEEPABLE)})"
    if name in SHAPE_FIELDS:
        return "changes array shapes, and the runs of a sweep are stacked into arrays of one shape"
    if name in DATA_FIELDS:
        return "chooses the data set, which all runs of a sweep share"
    if name in config_lib.RESUMABLE_FIELDS:
        return f"is shared by all runs of a sweep: set it with --config.{name}=VALUE"
    return (
        "is compiled into the train step as a constant, "
        "so runs with different values cannot share one program"
    )


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """The runs of a sweep: each run's swept values (the other fields come from the base config)."""

    runs: tuple[dict[str, Any], ...]

    @classmethod
    def grid(cls, values: dict[str, list]) -> SweepSpec:
        """Every combination of the values, the first field outermost."""
        fields = list(values)
        return cls(
            tuple(
                dict(zip(fields, combination))
                for combination in itertools.product(*values.values())
            )
        )

    def names(self) -> list[str]:
        """Folder names: index and values, e.g. `03-seed=1-lr=0.0002`."""
        width = max(2, len(str(len(self.runs) - 1)))
        return [
            f"{index:0{width}d}" + "".join(f"-{k}={_show(v)}" for k, v in run.items())
            for index, run in enumerate(self.runs)
        ]

    def configs(self, base: Config, source: str = "sweep") -> list[Config]:
        """Each run's resolved config; errors name the field and the run (unsweepable, bad value,
        duplicate)."""
        if not self.runs:
            raise SweepError(f"{source}: no runs")
        configs = []
        for index, run in enumerate(self.runs):
            for name in run:
                reason = unsweepable_reason(name)
                if reason:
                    raise SweepError(f"{source}: {name!r} cannot be swept: it {reason}")
                owner = next((t for t in TASK_MODULES if name in get_task(t).own_fields), None)
                if owner is not None and owner != base.task:
                    raise SweepError(
                        f"{source}: {name!r} is read by task {owner!r} only; this sweep trains "
                        f"task {base.task!r}"
                    )
            try:
                config = base.replace(**run)
            except ConfigError as error:
                raise SweepError(f"{source}: run {index} ({run}): {error}") from None
            if not 0 <= config.seed <= MAX_SEED or config.data_seed > MAX_SEED:
                raise SweepError(
                    f"{source}: run {index}: seeds must lie in 0..{MAX_SEED}, "
                    f"got seed {config.seed}, "
                    f"data_seed {config.data_seed}"
                )
            for name in PENALTIES:
                if getattr(config, name) and not getattr(base, name):
                    raise SweepError(
                        f"{source}: run {index} ({run}) sets {name} but the base config's is 0, "
                        "so the shared step has no such term: give the base config a nonzero "
                        f"--config.{name} to sweep it (0 stays a valid value of a run)"
                    )
            task = get_task(base.task)
            missing = set(task.roles_for(config)) - set(task.roles_for(base))
            if missing:
                raise SweepError(
                    f"{source}: run {index} ({run}) needs a {', '.join(sorted(missing))} that the "
                    "base config does not build; the runs of a sweep share their models (a "
                    "restorer's D exists only when lambda_adv is not 0: give the base config a "
                    "nonzero --config.lambda_adv to sweep it)"
                )
            if config in configs:
                raise SweepError(
                    f"{source}: runs {configs.index(config)} and {index} "
                    f"have the same settings ({run})"
                )
            configs.append(config)
        return configs

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [dict(run) for run in self.runs], "names": self.names()}


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_sweep_flags(flags: list[str]) -> SweepSpec:
    """`["seed=0,1,2,3", "lr=1e-4,2e-4"]` (repeated `--sweep FIELD=V1,V2,...`) -> the grid of the
    values."""
    values: dict[str, list] = {}
    for flag in flags:
        name, has_values, text = flag.partition("=")
        name = name.strip().removeprefix("config.")
        if not has_values or not text.strip():
            raise SweepError(
                f"--sweep {flag!r}: expected FIELD=V1,V2,... (e.g. --sweep seed=0,1,2,3)"
            )
        if name in values:
            raise SweepError(
                f"--sweep {flag!r}: {name!r} is swept twice; list all its values in one flag"
            )
        reason = unsweepable_reason(name)
        if reason:
            raise SweepError(f"--sweep {flag!r}: {name!r} cannot be swept: it {reason}")
        values[name] = [config_lib.parse_value(name, item.strip()) for item in text.split(",")]
    return SweepSpec.grid(values)


def load_sweep_file(path: str | os.PathLike) -> SweepSpec:
    """A JSON file holding `{"grid": {FIELD: [values]}}` or `{"runs": [{FIELD: value, ...},
    ...]}`."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"sweep file {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise SweepError(f"sweep file {path}: not readable JSON ({error})") from None
    found = sorted(content) if isinstance(content, dict) else type(content).__name__
    if found not in (["grid"], ["runs"]):
        raise SweepError(
            f"sweep file {path}: expected one key, 'grid' ({{FIELD: [values]}}) or 'runs' "
            f"([{{FIELD: value}}, ...]); found {found}"
        )
    if "grid" in content:
        grid = content["grid"]
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            raise SweepError(
                f"sweep file {path}: 'grid' must map each field to a non-empty list of values"
            )
        return SweepSpec.grid(grid)
    runs = content["runs"]
    if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
        raise SweepError(f"sweep file {path}: 'runs' must be a list of {{FIELD: value}} objects")
    return SweepSpec(tuple(runs))


# --- The stacked state and step -------------------------------------------------------------------


@struct.dataclass
class SweepState:
    runs: TrainState  # every leaf stacked on a leading axis of K runs
    active: (
        jax.Array
    )  # (K,) bool: False once a run went non-finite; its state stays frozen at its last good step


def init_values(config: Config) -> dict[str, jax.Array]:
    """The run's values that `init_state` reads off its config, as arrays (traced by `init_fn`)."""
    dtype = param_dtype(config)
    return {
        name: jnp.asarray(getattr(config, name))
        if name == "seed"
        else jnp.asarray(getattr(config, name), dtype)
        for name in INIT_FIELDS
    }


def init_fn(base: Config, modules: Modules) -> Callable[[dict[str, jax.Array]], TrainState]:
    """jit: a run's `init_values` -> its fresh TrainState, as `init_state(run_config)` makes it.
    `init_state` reads the seed and hyperparameters off the config, so a config holding traced
    values compiles once."""
    roles = get_task(base.task).roles_for(base)  # the stacked runs share the base's models
    return jax.jit(lambda values: init_state(dataclasses.replace(base, **values), modules, roles))


def stack(states: list[Any], mesh: Mesh) -> Any:
    """K pytrees of one structure -> one with each leaf stacked on a leading axis, split over
    `runs`."""
    return jax.jit(
        lambda *trees: jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees),
        out_shardings=sharding.runs_sharding(mesh),
    )(*states)


@functools.lru_cache(maxsize=4)
def _take_fn(destination: jax.sharding.Sharding):
    return jax.jit(
        lambda tree, index: jax.tree.map(lambda leaf: leaf[index], tree), out_shardings=destination
    )


def take(tree: Any, index: int, destination: jax.sharding.Sharding) -> Any:
    """Run `index` of a stacked pytree, placed on `destination` (one compiled slice for every
    index)."""
    return _take_fn(destination)(tree, jnp.asarray(index, jnp.int32))


def init_sweep(base: Config, configs: list[Config], modules: Modules, mesh: Mesh) -> SweepState:
    """The K runs' fresh states, stacked (one compiled init, K calls)."""
    init = init_fn(base, modules)
    runs = stack([init(init_values(config)) for config in configs], mesh)
    return SweepState(
        runs, jax.device_put(jnp.ones(len(configs), bool), sharding.runs_sharding(mesh))
    )


def resolve_mode(mode: str, mesh: Mesh) -> str:
    """`auto`: the loop over runs on CPU (XLA's CPU backend runs vmapped, i.e. grouped, convolutions
    slowly: docs/sweeps.md), `jax.vmap` elsewhere."""
    if mode not in MODES:
        raise SweepError(f"sweep mode must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    return "loop" if mesh.devices.flat[0].platform == "cpu" else "vmap"


def keep_finite(new: TrainState, old: TrainState, keep: jax.Array) -> TrainState:
    """The per-run freeze: the new state where `keep` (the run is active and its new losses and
    state are finite), else the old one, so NaNs never reach a later step."""
    return jax.tree.map(lambda new_leaf, old_leaf: jnp.where(keep, new_leaf, old_leaf), new, old)


class SweepStep(abc.ABC):
    """(SweepState, batch of stacked (K, B, ...) arrays) -> (SweepState, metrics of shape (K,)), the
    metrics holding each run's losses, `active` and `step` (a stopped run's is the step it froze
    at). The state is donated.

    `programs` are the jitted functions one step calls; `compile` returns the same step running
    their ahead-of-time compilations for these inputs (what a benchmark times, what a test reads).
    """

    mode: str

    def __init__(self, programs: dict[str, Callable]):
        self.programs = programs

    @abc.abstractmethod
    def __call__(
        self, sweep: SweepState, batch: dict[str, jax.Array]
    ) -> tuple[SweepState, dict[str, jax.Array]]: ...

    @abc.abstractmethod
    def compile(self, sweep: SweepState, batch: dict[str, jax.Array]) -> SweepStep: ...

    def compilations(self) -> list[int]:
        """How many times each program has been compiled (one compilation serves the sweep)."""
        return [program._cache_size() for program in self.programs.values()]


class VmapStep(SweepStep):
    """`jax.vmap` of the single-run step: one program; K small convolutions become one grouped
    convolution (fast on accelerators)."""

    mode = "vmap"

    def __call__(
        self, sweep: SweepState, batch: dict[str, jax.Array]
    ) -> tuple[SweepState, dict[str, jax.Array]]:
        return self.programs["step"](sweep, batch)

    def compile(self, sweep: SweepState, batch: dict[str, jax.Array]) -> VmapStep:
        return VmapStep({"step": self.programs["step"].lower(sweep, batch).compile()})


class LoopStep(SweepStep):
    """The runs one after another through one compiled single-run program, called K / R times per
    step (R: devices on the run axis, each advancing its own run j at once): compile time does not
    grow with K, and XLA:CPU runs every convolution as a single run does (docs/sweeps.md).

    Three programs: `run` takes run j of every device's block and its single-run step (nothing
    donated); `write` applies the freeze and puts the run back into the stacked state in place
    (state donated); `gather` makes the (K,) metrics. Writing the donated state in the program of
    the step slows that step on XLA:CPU, and the freeze there makes it compile about 1.4x longer,
    hence two programs.
    """

    mode = "loop"

    def __init__(self, programs: dict[str, Callable], indices: list[jax.Array]):
        super().__init__(programs)
        self.indices = indices  # j = 0 .. K / R - 1, on the devices, made once

    def __call__(
        self, sweep: SweepState, batch: dict[str, jax.Array]
    ) -> tuple[SweepState, dict[str, jax.Array]]:
        run, write, gather = (self.programs[name] for name in ("run", "write", "gather"))
        runs, active, metrics = sweep.runs, sweep.active, []
        for index in self.indices:
            new, run_metrics = run(runs, batch, index)
            runs, active = write(runs, active, new, run_metrics["finite"], index)
            metrics.append(run_metrics)
        return SweepState(runs, active), gather(metrics, active, runs.step)

    def compile(self, sweep: SweepState, batch: dict[str, jax.Array]) -> LoopStep:
        index = self.indices[0]
        run = self.programs["run"]
        new, metrics = jax.eval_shape(run, sweep.runs, batch, index)
        programs = {
            "run": run.lower(sweep.runs, batch, index),
            "write": self.programs["write"].lower(
                sweep.runs, sweep.active, new, metrics["finite"], index
            ),
            "gather": self.programs["gather"].lower(
                [metrics] * len(self.indices), sweep.active, sweep.runs.step
            ),
        }
        return LoopStep(
            {name: lowered.compile() for name, lowered in programs.items()}, self.indices
        )


def make_sweep_step(
    config: Config, modules: Modules, num_runs: int, mesh: Mesh, mode: str = "auto"
) -> SweepStep:
    """The sweep step of `mode` (`resolve_mode`): each run takes the single-run step (the task's
    `step`), then the per-run freeze (`keep_finite`)."""
    single = get_task(config.task).step(config, modules)
    runs, batches = sharding.runs_sharding(mesh), sharding.sweep_batch_sharding(mesh)
    replicated = sharding.replicated(mesh)  # metrics are replicated: every process reads them
    if resolve_mode(mode, mesh) == "vmap":

        def sweep_step(sweep: SweepState, batch: dict[str, jax.Array]):
            states, metrics = jax.vmap(single)(sweep.runs, batch)
            active = sweep.active & metrics["finite"]
            states = jax.vmap(keep_finite)(states, sweep.runs, active)
            return SweepState(states, active), {**metrics, "active": active, "step": states.step}

        return VmapStep(
            {
                "step": jax.jit(
                    sweep_step,
                    in_shardings=(runs, batches),
                    out_shardings=(runs, replicated),
                    donate_argnums=(0,),
                )
            }
        )

    per_device = num_runs // mesh.shape[sharding.RUNS_AXIS]

    def pick(tree, index):
        return jax.tree.map(lambda leaf: jax.lax.dynamic_index_in_dim(leaf, index), tree)

    def run_one(states, batch, index):  # on each device's block of runs: its run `index`
        picked = jax.tree.map(lambda leaf: leaf[0], pick((states, batch), index))
        return jax.tree.map(lambda leaf: leaf[None], single(*picked))

    def write_one(states, active, new, finite, index):
        keep = pick(active, index) & finite
        new = keep_finite(new, pick(states, index), keep)

        def put(leaf, value):
            return jax.lax.dynamic_update_slice_in_dim(leaf, value, index, 0)

        return jax.tree.map(put, states, new), put(active, keep)

    def gather(metrics, active, step):  # metrics[j][r] is run r * per_device + j
        stacked = jax.tree.map(lambda *values: jnp.stack(values, 1).reshape(-1), *metrics)
        return {**stacked, "active": active, "step": step}

    def per_block(function, arguments):  # manual over `runs`; each run's batch stays over `data`
        specs = (jax.sharding.PartitionSpec(sharding.RUNS_AXIS),) * (arguments - 1)
        return jax.shard_map(
            function,
            mesh=mesh,
            in_specs=(*specs, jax.sharding.PartitionSpec()),
            out_specs=jax.sharding.PartitionSpec(sharding.RUNS_AXIS),
            axis_names={sharding.RUNS_AXIS},
        )

    programs = {
        "run": jax.jit(
            per_block(run_one, 3),
            in_shardings=(runs, batches, replicated),
            out_shardings=runs,
        ),
        "write": jax.jit(
            per_block(write_one, 5),
            in_shardings=(runs, runs, runs, runs, replicated),
            out_shardings=runs,
            donate_argnums=(0, 1),
        ),
        "gather": jax.jit(gather, in_shardings=runs, out_shardings=replicated),
    }
    indices = [jax.device_put(jnp.int32(j), replicated) for j in range(per_device)]
    return LoopStep(programs, indices)
