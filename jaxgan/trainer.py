"""The training loop (`jaxgan.train`): feed batches to the compiled step; log, sample and
checkpoint.

The host touches the device only at log, sample and checkpoint steps. Re-running with the same
workdir resumes from the latest checkpoint and continues bit for bit; SIGTERM or Ctrl-C writes a
checkpoint at the current step and returns.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from pathlib import Path

import jax

from jaxgan import checkpoint, preemption, run_info, sharding
from jaxgan import config as config_lib
from jaxgan.data.fingerprint import changes as fingerprint_changes
from jaxgan.data.fingerprint import fingerprint
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import make_source
from jaxgan.loading import restore_state
from jaxgan.loop import Cadence, DurationEstimate, StepTimer, TimedBatches, final_line, log_scalars
from jaxgan.monitor import Monitor
from jaxgan.state import (
    Modules,
    TrainState,
    enable_precision,
    init_state,
    make_modules,
    param_dtype,
)
from jaxgan.tasks import get_task
from jaxgan.workdir_lock import WorkdirLock


class NonFiniteError(RuntimeError):
    """Losses or parameters became NaN or infinite; the last good checkpoint is kept."""


class DataChangedError(ValueError):
    """The data set's files changed since the run was started; resuming would draw other batches."""


def prepare_workdir(
    config: config_lib.Config,
    workdir: Path,
    data: dict | None = None,
    allow_data_change: bool = False,
) -> None:
    """Refuse to resume with a config that changes the numbers, or on data whose fingerprint changed
    (unless `allow_data_change`); record this training segment in run.json."""
    info = run_info.read_run_info(workdir)
    if info is not None:
        changed = config_lib.differences(info["config"], config)
        if changed:
            details = ", ".join(
                f"{n}: {getattr(info['config'], n)!r} -> {getattr(config, n)!r}" for n in changed
            )
            raise config_lib.ConfigError(
                f"{workdir} holds a run with a different config ({details}); "
                "these fields change the numbers, so "
                f"the run cannot resume with them. Use another --workdir, or only change "
                f"{', '.join(sorted(config_lib.RESUMABLE_FIELDS))}"
            )
        difference = fingerprint_changes(info["data"], data) if data and info.get("data") else None
        if difference and not allow_data_change:
            raise DataChangedError(
                f"{workdir}: the data changed since this run started ({difference}), so it "
                "would resume with other batches; pass --allow-data-change to resume anyway"
            )
        if difference:
            warnings.warn(f"{workdir}: resuming on changed data ({difference})", stacklevel=2)
    elif (workdir / "checkpoints").is_dir() and any((workdir / "checkpoints").iterdir()):
        raise checkpoint.CheckpointError(
            f"{workdir}/checkpoints exists but {workdir}/run.json does not; not a jaxgan workdir"
        )
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        layout = (
            f"{jax.device_count()} {jax.devices()[0].platform} device(s) "
            f"in {jax.process_count()} process(es)"
        )
        run_info.start_segment(
            workdir, config, run_info.latest_finished_step(workdir), layout, data
        )


def make_evaluator(config: config_lib.Config, modules: Modules, mesh):
    """(state, step) -> {name: value} run every `eval_every` steps, or None when evaluation is
    off."""
    return (
        get_task(config.task).make_evaluator(config, modules, mesh) if config.eval_every else None
    )


def train(
    config: config_lib.Config, workdir: str | os.PathLike, allow_data_change: bool = False
) -> TrainState:
    """Train (or resume) the run that `config` describes in `workdir`; returns the final state.

    One run at a time per workdir (a lock); a resume on data whose files changed is refused unless
    `allow_data_change`.
    """
    enable_precision(config)
    workdir = Path(workdir)
    mesh = sharding.make_mesh()
    sharding.check_batch_size(config.batch_size, mesh)
    source = make_source(config)  # bad data fails here, before anything is written
    with WorkdirLock(workdir, enabled=jax.process_index() == 0):
        prepare_workdir(config, workdir, fingerprint(source), allow_data_change)
        return _train(config, workdir, mesh, source)


def fresh_state(config: config_lib.Config, modules: Modules, mesh) -> TrainState:
    """A new run's state (DCGAN init from the seed), computed on the devices."""
    return jax.jit(
        functools.partial(init_state, config, modules), out_shardings=sharding.replicated(mesh)
    )()


def _train(config: config_lib.Config, workdir: Path, mesh, source) -> TrainState:
    primary, task = jax.process_index() == 0, get_task(config.task)
    modules = make_modules(config)
    step_fn = sharding.compile_step(task.step(config, modules), mesh)
    checkpoints = checkpoint.Checkpoints(workdir, config.keep_checkpoints)
    latest = (
        checkpoints.latest_step()
    )  # may be 0: a converted checkpoint holding given initial weights
    start = latest or 0
    monitor = Monitor(workdir, start, config.num_steps, enabled=primary, hparams=config.to_dict())
    monitor.write(f"jaxgan: {sharding.describe(mesh)}")
    monitor.write(
        f"data: {source.describe()}"
        + ("" if config.data else " (no data given: the built-in default)")
    )
    if latest is None:
        state = fresh_state(config, modules, mesh)
    else:
        state, _ = restore_state(checkpoints, start, config, sharding.replicated(mesh))
        monitor.write(f"resuming from step {start}")
    rows = sharding.process_rows(config.batch_size, mesh)
    batches = Batches(
        source,
        config.batch_size,
        config.resolved_data_seed,
        rows,
        latent_seed=config.seed,
        latent_dtype=param_dtype(config),
        **task.batch_options(config),
    )
    sample = task.make_sampler(config, modules, mesh)
    evaluator = make_evaluator(config, modules, mesh)
    cadence, step_timer, saved = Cadence(config), StepTimer(start), start
    timer = DurationEstimate(start, config.num_steps)
    results: dict[str, float] = {}
    grid = None

    def check_finite(step: int, metrics) -> None:
        if not bool(jax.device_get(metrics["finite"])):
            kept = (
                f"the last good checkpoint (step {saved}) stays the latest"
                if saved
                else "nothing was saved"
            )
            raise NonFiniteError(
                f"non-finite losses, parameters, statistics or optimiser moments at step {step}; "
                f"stopping: {kept}"
            )

    def save(step: int, metrics) -> None:
        nonlocal saved
        check_finite(step, metrics)
        sharding.check_replicas_agree(
            {
                **{role: model.params for role, model in state.models.items()},
                "ema": state.ema_params,
            },
            step,
        )
        checkpoints.save(
            step,
            state,
            {"data_position": config.data_position(step), "skipped_examples": len(batches.skipped)},
        )
        if primary:
            run_info.end_segment(workdir, step)
        saved = step

    def save_after_failure(step: int, metrics, error: Exception) -> str:
        """Checkpoint the last good state after a failure outside the step; the message for the
        user."""
        cause = f"{type(error).__name__}: {error} (at step {step}, outside the train step)"
        if jax.process_count() > 1:  # a save needs every process, and the others are stepping on
            return (
                f"{cause}; with several processes no checkpoint can be written alone: "
                f"the last is step {saved}"
            )
        try:
            if saved != step:
                save(step, metrics)
            checkpoints.wait()
        except Exception as save_error:  # e.g. the disk is full for the checkpoint too
            return (
                f"{cause}; the checkpoint of step {step} could not be written either "
                f"({save_error}): the last "
                f"good checkpoint is step {saved}"
            )
        return (
            f"{cause}; a checkpoint of step {step} was written first: "
            "the same command resumes from it"
        )

    try:
        with preemption.StopRequest() as stop:
            feed = TimedBatches(batches.iterate(start, config.num_steps, config.loader_threads))
            for step, host_batch in zip(range(start, config.num_steps), feed):
                state, metrics = step_fn(state, sharding.to_global(host_batch, mesh))
                done = step + 1
                monitor.advance()
                moments = cadence.after(done)
                # what the host does between steps:
                # a failure here must not lose the steps since a save
                try:
                    if timer.wants(done):
                        jax.block_until_ready(metrics)
                        estimate = timer.mark(done)
                        if estimate:
                            monitor.write(estimate)
                    if moments.log:
                        check_finite(done, metrics)
                        wait_ms = 1000 * feed.take() / (done - step_timer.last_step)
                        seconds = step_timer.lap(done)
                        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                        scalars = {
                            **log_scalars(task.log_names, values, seconds, config.batch_size),
                            "speed/data_wait_ms": wait_ms,
                        }
                        monitor.log(done, scalars, log_line(task.shown, done, values, seconds))
                    if moments.sample:
                        grid = monitor.images(done, sample(state))
                    if evaluator is not None and moments.evaluate:
                        results = {"step": done, **evaluator(state, done)}
                        monitor.log(done, {k: v for k, v in results.items() if k != "step"})
                except NonFiniteError:
                    raise
                except Exception as error:
                    raise RuntimeError(save_after_failure(done, metrics, error)) from error
                stopping = stop.requested(done)
                if moments.save or stopping:
                    save(done, metrics)
                if stopping:
                    monitor.write(
                        f"stopping on signal {stop.signal_name}: checkpoint written at step {done}"
                    )
                    break
            else:
                seconds = time.perf_counter() - timer.started
                monitor.write(final_line(workdir, config.num_steps - start, grid, results, seconds))
    finally:
        # a pending asynchronous save of a good state completes even when the run stops on an error
        checkpoints.wait()
        checkpoints.close()
        monitor.close()
    return state


def log_line(names: tuple[str, ...], step: int, values: dict[str, float], seconds: float) -> str:
    shown = " ".join(f"{k} {values[k]:.4f}" for k in names if k in values)
    return f"step {step}: {shown} | {1000 * seconds:.0f} ms/step"
