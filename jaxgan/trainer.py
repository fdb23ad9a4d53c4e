"""The training loop (`jaxgan.train`): feed batches to the compiled step; log, sample and checkpoint.

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
import numpy as np

from jaxgan import checkpoint, preemption, sharding
from jaxgan import config as config_lib
from jaxgan.augment import augment_size, parse_policy
from jaxgan.data.fingerprint import changes as fingerprint_changes
from jaxgan.data.fingerprint import fingerprint
from jaxgan.data.order import sample_latents
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import make_source
from jaxgan.monitor import Monitor, image_grid
from jaxgan.state import TrainState, enable_precision, init_state, make_models, param_dtype, sample_variables
from jaxgan.train_step import gan_step
from jaxgan.workdir_lock import WorkdirLock


class NonFiniteError(RuntimeError):
    """Losses or parameters became NaN or infinite; the last good checkpoint is kept."""


class DataChangedError(ValueError):
    """The data set's files changed since the run was started; resuming would draw other batches."""


def prepare_workdir(config: config_lib.Config, workdir: Path, data: dict | None = None,
                    allow_data_change: bool = False) -> None:
    """Refuse to resume with a config that changes the numbers, or on data whose fingerprint changed
    (unless `allow_data_change`); record this training segment in run.json."""
    info = checkpoint.read_run_info(workdir)
    if info is not None:
        changed = config_lib.differences(info["config"], config)
        if changed:
            details = ", ".join(f"{n}: {getattr(info['config'], n)!r} -> {getattr(config, n)!r}" for n in changed)
            raise config_lib.ConfigError(
                f"{workdir} holds a run with a different config ({details}); these fields change the numbers, so "
                f"the run cannot resume with them. Use another --workdir, or only change "
                f"{', '.join(sorted(config_lib.RESUMABLE_FIELDS))}")
        difference = fingerprint_changes(info["data"], data) if data and info.get("data") else None
        if difference and not allow_data_change:
            raise DataChangedError(f"{workdir}: the data changed since this run started ({difference}), so it "
                                   "would resume with other batches; pass --allow-data-change to resume anyway")
        if difference:
            warnings.warn(f"{workdir}: resuming on changed data ({difference})", stacklevel=2)
    elif (workdir / "checkpoints").is_dir() and any((workdir / "checkpoints").iterdir()):
        raise checkpoint.CheckpointError(f"{workdir}/checkpoints exists but {workdir}/run.json does not; "
                                         "not a jaxgan workdir")
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        layout = f"{jax.device_count()} {jax.devices()[0].platform} device(s) in {jax.process_count()} process(es)"
        checkpoint.start_segment(workdir, config, checkpoint.latest_finished_step(workdir), layout, data)


def task_step(config: config_lib.Config):
    if config.task == "restore":
        from jaxgan.restoration.train_step import restore_step

        return functools.partial(restore_step, config)
    return functools.partial(gan_step, augment=parse_policy(config.augment))


def host_transform(config: config_lib.Config):
    """The restoration task's host-side batch hook (JPEG degradation), or None."""
    if config.task != "restore":
        return None
    from jaxgan.restoration.degradations import Degradation, host_transform

    return host_transform(Degradation.from_config(config))


def make_sampler(config: config_lib.Config, models, mesh):
    """state -> a uint8 sample grid: fixed latents through the (EMA) generator in eval mode."""
    if config.task == "restore":
        from jaxgan.restoration.train_step import make_sample_grid

        return make_sample_grid(config, models, mesh)
    latents = sample_latents(config.seed, config.num_samples, config.nz).astype(param_dtype(config))
    generate = jax.jit(lambda variables: models.generator.apply(variables, latents, train=False))
    return lambda state: image_grid(np.asarray(jax.device_get(generate(sample_variables(state))), np.float32))


def make_evaluator(config: config_lib.Config, models, mesh):
    """(state, step) -> {name: value} run every `eval_every` steps, or None when evaluation is off."""
    return task_evaluator(config, models, mesh) if config.eval_every else None


def task_evaluator(config: config_lib.Config, models, mesh):
    """(state, step) -> {name: value}: the task's evaluation (held-out PSNR/SSIM, digits metrics, FID), or None
    when nothing can be measured for this data."""
    if config.task == "restore":
        from jaxgan.restoration.evaluate import make_training_evaluator
    else:
        from jaxgan.metrics.training import make_training_evaluator
    return make_training_evaluator(config, models, mesh)


def train(config: config_lib.Config, workdir: str | os.PathLike, allow_data_change: bool = False) -> TrainState:
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


def fresh_state(config: config_lib.Config, models, mesh) -> TrainState:
    """A new run's state (DCGAN init from the seed), computed on the devices."""
    return jax.jit(functools.partial(init_state, config, models), out_shardings=sharding.replicated(mesh))()


def abstract_state(config: config_lib.Config, models, mesh) -> TrainState:
    """The state's shapes, dtypes and shardings, to restore a checkpoint into (nothing is computed)."""
    shapes = jax.eval_shape(functools.partial(init_state, config, models))
    return checkpoint.abstract_like(shapes, sharding.replicated(mesh))


def _train(config: config_lib.Config, workdir: Path, mesh, source) -> TrainState:
    primary = jax.process_index() == 0
    models = make_models(config)
    step_fn = sharding.compile_step(functools.partial(task_step(config), models), mesh)
    checkpoints = checkpoint.Checkpoints(workdir, config.keep_checkpoints)
    latest = checkpoints.latest_step()  # may be 0: a converted checkpoint holding given initial weights
    start = latest or 0
    monitor = Monitor(workdir, start, config.num_steps, enabled=primary, hparams=config.to_dict())
    monitor.write(f"jaxgan: {sharding.describe(mesh)}")
    monitor.write(f"data: {source.describe()}" + ("" if config.data else " (no data given: the built-in default)"))
    if latest is None:
        state = fresh_state(config, models, mesh)
    else:
        state, _ = checkpoints.restore(start, abstract_state(config, models, mesh))
        monitor.write(f"resuming from step {start}")
    rows = sharding.process_rows(config.batch_size, mesh)
    batches = Batches(source, config.batch_size, config.resolved_data_seed, rows, latent_seed=config.seed,
                      nz=config.nz if config.task == "gan" else 0, latent_dtype=param_dtype(config),
                      transform=host_transform(config), augment_size=augment_size(config))
    sample = make_sampler(config, models, mesh)
    evaluator = make_evaluator(config, models, mesh)
    saved, last_time, last_step = start, time.perf_counter(), start
    timer = DurationEstimate(start, config.num_steps)
    results: dict[str, float] = {}
    grid = None

    def check_finite(step: int, metrics) -> None:
        if not bool(jax.device_get(metrics["finite"])):
            kept = f"the last good checkpoint (step {saved}) stays the latest" if saved else "nothing was saved"
            raise NonFiniteError(f"non-finite losses, parameters, statistics or optimiser moments at step {step}; "
                                 f"stopping: {kept}")

    def save(step: int, metrics) -> None:
        nonlocal saved
        check_finite(step, metrics)
        sharding.check_replicas_agree({"generator": state.generator.params, "discriminator": state.discriminator.params,
                                       "ema": state.ema_params}, step)
        checkpoints.save(step, state, {"data_position": step, "skipped_examples": len(batches.skipped)})
        if primary:
            checkpoint.end_segment(workdir, step)
        saved = step

    def save_after_failure(step: int, metrics, error: Exception) -> str:
        """Checkpoint the last good state after a failure outside the step; the message for the user."""
        cause = f"{type(error).__name__}: {error} (at step {step}, outside the train step)"
        if jax.process_count() > 1:  # a save needs every process, and the others are stepping on
            return f"{cause}; with several processes no checkpoint can be written alone: the last is step {saved}"
        try:
            if saved != step:
                save(step, metrics)
            checkpoints.wait()
        except Exception as save_error:  # e.g. the disk is full for the checkpoint too
            return (f"{cause}; the checkpoint of step {step} could not be written either ({save_error}): the last "
                    f"good checkpoint is step {saved}")
        return f"{cause}; a checkpoint of step {step} was written first: the same command resumes from it"

    try:
        with preemption.StopRequest() as stop:
            feed = TimedBatches(batches.iterate(start, config.num_steps, config.loader_threads))
            for step, host_batch in zip(range(start, config.num_steps), feed):
                state, metrics = step_fn(state, sharding.to_global(host_batch, mesh))
                done = step + 1
                monitor.advance()
                try:  # what the host does between steps: a failure here must not lose the steps since a save
                    if timer.wants(done):
                        jax.block_until_ready(metrics)
                        estimate = timer.mark(done)
                        if estimate:
                            monitor.write(estimate)
                    if done % config.log_every == 0 or done == config.num_steps:
                        check_finite(done, metrics)
                        now = time.perf_counter()
                        wait_ms = 1000 * feed.take() / (done - last_step)
                        seconds, last_time, last_step = (now - last_time) / (done - last_step), now, done
                        values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                        scalars = {**log_scalars(values, seconds, config.batch_size), "speed/data_wait_ms": wait_ms}
                        monitor.log(done, scalars, log_line(done, values, seconds))
                    if done % config.sample_every == 0 or done == config.num_steps:
                        grid = monitor.images(done, sample(state))
                    if evaluator is not None and (done % config.eval_every == 0 or done == config.num_steps):
                        results = {"step": done, **evaluator(state, done)}
                        monitor.log(done, {k: v for k, v in results.items() if k != "step"})
                except NonFiniteError:
                    raise
                except Exception as error:
                    raise RuntimeError(save_after_failure(done, metrics, error)) from error
                stopping = stop.requested(done)
                if done % config.checkpoint_every == 0 or done == config.num_steps or stopping:
                    save(done, metrics)
                if stopping:
                    monitor.write(f"stopping on signal {stop.signal_name}: checkpoint written at step {done}")
                    break
            else:
                seconds = time.perf_counter() - timer.started
                monitor.write(final_line(workdir, config.num_steps - start, grid, results, seconds))
    finally:  # a pending asynchronous save of a good state completes even when the run stops on an error
        checkpoints.wait()
        checkpoints.close()
        monitor.close()
    return state


class TimedBatches:
    """The batch iterator, counting the time the loop waits for each batch (`speed/data_wait_ms`): time the
    host is blocked on data, an upper bound on the time the devices idle for it (dispatch is asynchronous)."""

    def __init__(self, batches):
        self.batches, self.waited = iter(batches), 0.0

    def __iter__(self) -> TimedBatches:
        return self

    def __next__(self):
        started = time.perf_counter()
        try:
            return next(self.batches)
        finally:
            self.waited += time.perf_counter() - started

    def take(self) -> float:
        """Seconds waited since the last call."""
        waited, self.waited = self.waited, 0.0
        return waited


class DurationEstimate:
    """The run's expected duration from its measured step time: steps 2 to 11 of this segment (the first
    compiles), then the rest of the run at that speed, printed once."""

    MEASURED_STEPS = 10

    def __init__(self, start: int, num_steps: int):
        self.start, self.num_steps, self.started, self.first = start, num_steps, time.perf_counter(), None

    def wants(self, done: int) -> bool:
        return done in (self.start + 1, self.start + 1 + self.MEASURED_STEPS) and done < self.num_steps

    def mark(self, done: int) -> str | None:
        now = time.perf_counter()
        if done == self.start + 1:
            self.first = now
            return None
        seconds = (now - self.first) / self.MEASURED_STEPS
        remaining = self.num_steps - done
        return (f"step time {1000 * seconds:.0f} ms (steps {self.start + 2}-{done}): the {remaining:,} steps left "
                f"take about {format_duration(remaining * seconds)} on this machine, plus evaluations and "
                "checkpoints (the progress bar's ETA follows the actual speed)")


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def final_line(workdir: Path, steps: int, grid: Path | None, results: dict[str, float], seconds: float) -> str:
    """The run's last line: where the samples are and what its final evaluation measured."""
    line = f"done: {steps:,} steps in {format_duration(seconds)}; final samples: {grid or workdir / 'samples'}"
    if results:
        shown = {"eval/digits_fid": "digits-FID {:.3f}", "eval/modes": "modes {:.0f}/10", "eval/fid": "FID {:.2f}",
                 "eval/is": "IS {:.2f}", "eval/psnr": "PSNR {:.2f} dB", "eval/ssim": "SSIM {:.4f}"}
        measured = ", ".join(form.format(results[name]) for name, form in shown.items() if name in results)
        line += f"; {measured} (evaluated at step {results['step']:,})"
    return line + f"; checkpoints, metrics.jsonl and TensorBoard logs in {workdir}"


def log_scalars(values: dict[str, float], seconds: float, batch_size: int) -> dict[str, float]:
    names = {"d_loss": "loss/d", "g_loss": "loss/g", "d_loss_real": "loss/d_real", "d_loss_fake": "loss/d_fake",
             "d_x": "d/x", "d_g_z1": "d/g_z1", "d_g_z2": "d/g_z2", "rec_loss": "loss/reconstruction",
             "adv_loss": "loss/adversarial"}
    scalars = {names.get(k, f"metrics/{k}"): v for k, v in values.items() if k != "finite"}
    scalars.update({"speed/img_per_s": batch_size / seconds, "speed/step_ms": 1000 * seconds})
    return scalars


def log_line(step: int, values: dict[str, float], seconds: float) -> str:
    shown = " ".join(f"{k} {values[k]:.4f}" for k in ("d_loss", "g_loss", "rec_loss", "d_x", "d_g_z1", "d_g_z2")
                     if k in values)
    return f"step {step}: {shown} | {1000 * seconds:.0f} ms/step"
