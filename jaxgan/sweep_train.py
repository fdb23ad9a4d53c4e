"""The sweep loop (`train_sweep`): K runs through one compiled step, each run in its own complete
workdir.

WORKDIR/sweep.json holds the sweep (base config, runs); WORKDIR/NAME/ is a run's workdir (run.json
with its resolved config, checkpoints/, samples/, tensorboard/, metrics.jsonl), which
scripts/sample.py, evaluate.py and convert.py read like any workdir. Re-running the command resumes
every run at the latest checkpoint step they all have. A run that goes non-finite stays frozen at
its last good state inside the compiled step; that state is saved, the stop recorded in
WORKDIR/stopped.json and reported, and the other runs go on. At the end WORKDIR/summary.md and
summary.json rank the runs (`jaxgan.sweep_summary`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from jaxgan import checkpoint, preemption, run_info, sharding, sweep_summary
from jaxgan.atomic import atomic_path
from jaxgan.config import Config
from jaxgan.data.fingerprint import fingerprint
from jaxgan.data.pipeline import Batches, keyed_draws, per_step, prefetched
from jaxgan.data.sources import Source, make_source
from jaxgan.loading import restore_state
from jaxgan.loop import Cadence, DurationEstimate, StepTimer, log_scalars
from jaxgan.monitor import Monitor
from jaxgan.state import enable_precision, make_modules, param_dtype
from jaxgan.sweep import (
    SweepError,
    SweepSpec,
    SweepState,
    init_sweep,
    load_sweep_file,
    make_sweep_step,
    parse_sweep_flags,
    resolve_mode,
    stack,
    take,
)
from jaxgan.tasks import get_task
from jaxgan.trainer import prepare_workdir
from jaxgan.workdir_lock import LOCK_FILE, WorkdirLock

SPEC_FILE, STOPPED_FILE = "sweep.json", "stopped.json"
FORMAT_VERSION = 1


def is_sweep(workdir: str | os.PathLike) -> bool:
    return (Path(workdir) / SPEC_FILE).is_file()


def read_spec(workdir: str | os.PathLike) -> SweepSpec:
    """The sweep recorded in a sweep workdir (to resume it without repeating the --sweep flags)."""
    path = Path(workdir) / SPEC_FILE
    info = json.loads(path.read_text())
    if info.get("format_version") != FORMAT_VERSION:
        raise SweepError(
            f"{path}: sweep format version {info.get('format_version')}, this jaxgan reads "
            f"{FORMAT_VERSION}"
        )
    return SweepSpec(tuple(info["runs"]))


def requested_sweep(
    flags: list[str], sweep_file: str | None, workdir: str | os.PathLike, base: Config
) -> SweepSpec | None:
    """The sweep that scripts/train.py's flags ask for (checked against the base config): `--sweep`
    flags, a `--sweep-file`, or, with neither, the sweep already in `workdir` (resuming it); None
    for a single run."""
    if flags and sweep_file:
        raise SweepError("give --sweep flags or --sweep-file, not both")
    if flags or sweep_file:
        spec = parse_sweep_flags(flags) if flags else load_sweep_file(sweep_file)
    elif is_sweep(workdir):
        spec = read_spec(workdir)
    else:
        return None
    spec.configs(base)
    return spec


def _write_json(path: Path, content: Any) -> None:
    if jax.process_index() == 0:
        with atomic_path(path) as temporary:
            temporary.write_text(json.dumps(content, indent=2) + "\n")


def prepare_root(
    base: Config,
    spec: SweepSpec,
    configs: list[Config],
    root: Path,
    data: dict | None = None,
    allow_data_change: bool = False,
) -> list[Path]:
    """Refuse a workdir holding something else or another sweep; record the sweep; prepare each
    run's workdir (refusing changed data as a single run does)."""
    names, record = (
        spec.names(),
        {"format_version": FORMAT_VERSION, "base_config": base.to_dict(), **spec.to_dict()},
    )
    if run_info.is_workdir(root):
        raise SweepError(
            f"{root} holds a single run ({run_info.RUN_FILE}); give the sweep its own --workdir"
        )
    if is_sweep(root):
        old = json.loads((root / SPEC_FILE).read_text())
        if old["runs"] != json.loads(json.dumps(spec.to_dict()["runs"])):
            raise SweepError(
                f"{root} holds another sweep (runs {old['names']}); "
                f"this command asks for runs {names}. "
                "Use another --workdir, or repeat the sweep's --sweep flags to resume it"
            )
    elif root.is_dir() and any(p.name != LOCK_FILE for p in root.iterdir()):
        raise SweepError(
            f"{root} exists, is not empty and holds no {SPEC_FILE}: not a sweep workdir"
        )
    else:  # a new sweep: marked as one before its runs' folders appear
        _write_json(root / SPEC_FILE, record)
    for config, name in zip(configs, names):
        prepare_workdir(
            config, root / name, data, allow_data_change
        )  # refuses a config that changes the numbers
    _write_json(
        root / SPEC_FILE, record
    )  # the base config's bookkeeping fields (num_steps, ...) as now given
    return [root / name for name in names]


class SweepBatches:
    """This process's block of the stacked host batches: {"images": (k, b, S, S, nc) uint8[,
    "latents"]}.

    One `Batches` stream per distinct data seed (runs with the same data seed share its decoded
    images), over the source as that data seed makes it (photos' crops are keyed by it); latents
    (and augmentation draws) keyed by each run's seed, as a single run draws them (`keyed_draws`).
    """

    def __init__(self, source: Source, base: Config, configs: list[Config], rows: slice):
        self.configs, self.rows, self.base = configs, rows, base
        options = get_task(base.task).batch_options(base)
        self.nz, self.augment_size = options.get("nz", 0), options.get("augment_size", 0)
        self.penalty_mix = options.get("penalty_mix", False)
        self.batches_per_step = options.get("batches_per_step", 1)
        self.streams = {
            seed: Batches(
                source.with_data_seed(seed),
                base.batch_size,
                seed,
                rows,
                transform=options.get("transform"),
                batches_per_step=self.batches_per_step,
                labels=options.get("labels", False),
            )
            for seed in dict.fromkeys(c.resolved_data_seed for c in configs)
        }

    def batch(self, step: int) -> dict[str, np.ndarray]:
        images = {seed: stream.batch(step) for seed, stream in self.streams.items()}
        keys = next(iter(images.values())).keys()
        batch = {
            key: np.stack([images[c.resolved_data_seed][key] for c in self.configs]) for key in keys
        }
        base = self.base
        drawn = {
            seed: per_step(
                lambda index, seed=seed: keyed_draws(
                    seed,
                    index,
                    base.batch_size,
                    self.rows,
                    self.nz,
                    self.augment_size,
                    param_dtype(base),
                    self.penalty_mix,
                ),
                step,
                self.batches_per_step,
            )
            for seed in dict.fromkeys(c.seed for c in self.configs)
        }
        for key in drawn[self.configs[0].seed]:
            batch[key] = np.stack([drawn[c.seed][key] for c in self.configs])
        return batch

    def iterate(self, start: int, stop: int, threads: int = 8, prefetch: int = 16):
        return prefetched(self.batch, start, stop, threads, prefetch)

    def skipped(self, config: Config) -> int:
        stream = self.streams.get(
            config.resolved_data_seed
        )  # None: another process holds this run's data
        return len(stream.skipped) if stream is not None else 0


class SweepRuns:
    """The host side of a sweep's K runs: their workdirs, checkpoints, monitors, samplers,
    evaluators, stops."""

    def __init__(
        self,
        base: Config,
        spec: SweepSpec,
        configs: list[Config],
        run_dirs: list[Path],
        modules,
        run_mesh,
        batches: SweepBatches,
        write,
    ):
        self.base, self.spec, self.configs, self.run_dirs, self.modules = (
            base,
            spec,
            configs,
            run_dirs,
            modules,
        )
        self.task = get_task(base.task)
        self.names, self.run_mesh, self.batches, self.write = spec.names(), run_mesh, batches, write
        self.placed = sharding.replicated(run_mesh)  # one run's state, as a single run holds it
        self.checkpoints = [checkpoint.Checkpoints(d, base.keep_checkpoints) for d in run_dirs]
        stopped_file = run_dirs[0].parent / STOPPED_FILE
        self.stopped: dict[str, dict] = (
            json.loads(stopped_file.read_text()) if stopped_file.is_file() else {}
        )
        self.monitors: list[Monitor] = []
        self.samplers: dict[int, Any] = {}
        self.evaluators: dict[int, Any] = {}

    def restore(self, fresh: SweepState, mesh) -> tuple[SweepState, int]:
        """Restack the runs at the latest checkpoint step all running runs have (stopped runs at
        their frozen step); returns (state, start step). Running runs start fresh when there is no
        such step."""
        names, checkpoints, stopped = self.names, self.checkpoints, self.stopped
        running = [k for k, name in enumerate(names) if name not in stopped]
        common = (
            set.intersection(*(set(checkpoints[k].all_steps()) for k in running))
            if running
            else set()
        )
        start = max(common, default=None)
        targets = {k: start for k in running if start is not None}
        for k, name in enumerate(
            names
        ):  # its frozen state (or, were that save cut off, the one before)
            saved = [
                s
                for s in checkpoints[k].all_steps()
                if name in stopped and s <= stopped[name]["step"]
            ]
            if saved:
                targets[k] = max(saved)
        active = jax.device_put(
            np.array([name not in stopped for name in names]), sharding.runs_sharding(mesh)
        )
        start = (
            (start or 0) if running else self.base.num_steps
        )  # nothing left to train when all have stopped
        if not targets:
            return fresh.replace(active=active), start
        states = [
            restore_state(checkpoints[k], targets[k], self.base, self.placed)[0]
            if k in targets
            else self.run_state(fresh, k)
            for k in range(len(names))
        ]
        return SweepState(stack(states, mesh), active), start

    def open_monitors(self, start: int) -> None:
        primary = jax.process_index() == 0
        self.monitors = [
            Monitor(
                d, start, self.base.num_steps, enabled=primary, hparams=c.to_dict(), progress=False
            )
            for d, c in zip(self.run_dirs, self.configs)
        ]

    def run_state(self, state: SweepState, k: int):
        return take(state.runs, k, self.placed)

    def save(self, k: int, step: int, run_state) -> None:
        if step in self.checkpoints[k].all_steps():  # saved before a resume: the same numbers
            return
        sharding.check_replicas_agree(
            {role: model.params for role, model in run_state.models.items()}, step
        )
        self.checkpoints[k].save(
            step,
            run_state,
            {
                "data_position": self.configs[k].data_position(step),
                "skipped_examples": self.batches.skipped(self.configs[k]),
            },
        )
        if jax.process_index() == 0:
            run_info.end_segment(self.run_dirs[k], step)

    def note_stops(self, state: SweepState, values: dict[str, np.ndarray]) -> list[int]:
        """Save, record and report runs newly frozen by the step; return the runs still running."""
        for k in np.flatnonzero(~values["active"]):
            name = self.names[k]
            if name not in self.stopped:
                frozen = int(values["step"][k])
                self.stopped[name] = {"step": frozen, "settings": self.spec.runs[k]}
                self.save(k, frozen, self.run_state(state, k))
                _write_json(self.run_dirs[k].parent / STOPPED_FILE, self.stopped)
                self.write(
                    f"run {name} stopped: non-finite losses or parameters at step {frozen + 1}; "
                    "its last "
                    f"good state (step {frozen}) is saved as its checkpoint; the other runs go on"
                )
        return [k for k in range(len(self.names)) if values["active"][k]]

    def log(
        self, step: int, values: dict[str, np.ndarray], running: list[int], seconds: float
    ) -> None:
        for k in running:
            scalars = {n: float(v[k]) for n, v in values.items() if n not in ("active", "step")}
            self.monitors[k].log(
                step, log_scalars(self.task.log_names, scalars, seconds, self.base.batch_size)
            )
        self.write(log_line(step, values, seconds, len(self.names) * self.base.batch_size))

    def sample(self, k: int, run_state, step: int) -> None:
        if k not in self.samplers:
            self.samplers[k] = self.task.make_sampler(self.configs[k], self.modules, self.run_mesh)
        self.monitors[k].images(step, self.samplers[k](run_state))

    def evaluate(self, k: int, run_state, step: int) -> None:
        """Log the task's evaluation of run k (digits metrics, held-out PSNR/SSIM, ...), when there
        is one."""
        if k not in self.evaluators:
            with warnings.catch_warnings():
                if (
                    not self.base.eval_every
                ):  # only the summary asks: no score for this data is no news
                    warnings.simplefilter("ignore")
                self.evaluators[k] = self.task.make_evaluator(
                    self.configs[k], self.modules, self.run_mesh
                )
        if self.evaluators[k] is not None:
            self.monitors[k].log(step, self.evaluators[k](run_state, step))

    def final_row(
        self, k: int, run_state, fid_reference: str | None, inception_weights: str | None
    ) -> dict:
        """Run k's summary row, evaluated at its final step (unless that was done) and logged to its
        metrics."""
        step, metrics_file = int(jax.device_get(run_state.step)), self.run_dirs[k] / "metrics.jsonl"
        logged = sweep_summary.logged_at(metrics_file, step)
        if not any(name.startswith("eval/") and name != "eval/ref_fid" for name in logged):
            self.evaluate(k, run_state, step)
        if fid_reference and "eval/ref_fid" not in logged:
            self.checkpoints[k].wait()
            fid = reference_fid(self.run_dirs[k], self.configs[k], fid_reference, inception_weights)
            self.monitors[k].log(step, {"eval/ref_fid": fid})
        return sweep_summary.run_row(
            k,
            self.names[k],
            self.spec.runs[k],
            self.run_dirs[k],
            step,
            self.stopped.get(self.names[k]),
        )

    def close(self) -> None:
        """Pending asynchronous saves complete, even when the sweep stops on an error."""
        for manager in self.checkpoints:
            manager.wait()
            manager.close()
        for monitor in self.monitors:
            monitor.close()


def train_sweep(
    base: Config,
    spec: SweepSpec,
    workdir: str | os.PathLike,
    mode: str = "auto",
    sort_by: str | None = None,
    fid_reference: str | None = None,
    inception_weights: str | None = None,
    allow_data_change: bool = False,
) -> SweepState:
    """Train (or resume) the runs of `spec` (values over `base`) in `workdir`; returns the final
    stacked state.

    `fid_reference`: a statistics .npz (pytorch-fid's mu/sigma): each run's FID against it goes into
    the summary (Inception weights from `inception_weights` or $JAXGAN_INCEPTION_WEIGHTS).
    """
    enable_precision(base)
    root = Path(workdir)
    configs, num_runs, batch_size = spec.configs(base), len(spec.runs), base.batch_size
    mesh, run_mesh = sharding.make_sweep_mesh(num_runs), sharding.make_mesh()
    mode = resolve_mode(mode, mesh)
    sharding.check_batch_size(batch_size, mesh)
    sweep_summary.check_sort_key(sort_by)
    if fid_reference:  # bad files fail before training, not after it
        from jaxgan.metrics.fid import load_statistics
        from jaxgan.metrics.inception_convert import resolve_weights_path

        load_statistics(fid_reference)
        inception_weights = str(resolve_weights_path(inception_weights))
    source = make_source(base)
    with WorkdirLock(
        root, enabled=jax.process_index() == 0
    ):  # one sweep (or run) per workdir at a time
        run_dirs = prepare_root(base, spec, configs, root, fingerprint(source), allow_data_change)
        modules = make_modules(base)
        step_fn = make_sweep_step(base, modules, num_runs, mesh, mode)
        primary = jax.process_index() == 0
        bar = tqdm(
            total=base.num_steps,
            unit="step",
            dynamic_ncols=True,
            smoothing=0.1,
            disable=not primary,
        )
        write = bar.write if primary else (lambda line: None)
        block_runs, block_rows = sharding.process_block(num_runs, batch_size, mesh)
        batches = SweepBatches(source, base, configs[block_runs], block_rows)
        runs = SweepRuns(base, spec, configs, run_dirs, modules, run_mesh, batches, write)
        try:
            state, start = runs.restore(init_sweep(base, configs, modules, mesh), mesh)
            runs.open_monitors(start)
            bar.update(start)
            write(f"jaxgan sweep: {num_runs} runs ({mode}) in {root}; {sharding.describe(mesh)}")
            write(f"data: {source.describe()}")
            if start:
                write(
                    f"resuming the sweep from step {start}, "
                    "the latest checkpoint all running runs have"
                )
            for name, info in runs.stopped.items():
                write(
                    f"run {name} stayed stopped at step {info['step']} "
                    f"(non-finite at step {info['step'] + 1})"
                )
            interrupted, cadence, step_timer = False, Cadence(base), StepTimer(start)
            timer = DurationEstimate(start, base.num_steps)
            with preemption.StopRequest() as stop:
                for step, host_batch in zip(
                    range(start, base.num_steps),
                    batches.iterate(start, base.num_steps, base.loader_threads),
                ):
                    state, metrics = step_fn(
                        state, sharding.to_global_sweep(host_batch, mesh, num_runs, batch_size)
                    )
                    done = step + 1
                    bar.update()
                    if timer.wants(done):
                        jax.block_until_ready(metrics)
                        estimate = timer.mark(done)
                        if estimate:
                            write(estimate)
                    stopping = stop.requested(done)
                    moments = cadence.after(done, stopping)
                    if not moments.any():
                        continue
                    values = jax.device_get(metrics)
                    running = runs.note_stops(state, values)
                    if moments.log:
                        runs.log(done, values, running, step_timer.lap(done))
                    for k in running if moments.sample or moments.evaluate or moments.save else ():
                        run_state = runs.run_state(state, k)
                        if moments.sample:
                            runs.sample(k, run_state, done)
                        if moments.evaluate:
                            runs.evaluate(k, run_state, done)
                        if moments.save:
                            runs.save(k, done, run_state)
                    if stopping:
                        interrupted = True
                        write(
                            f"stopping on signal {stop.signal_name}: "
                            f"checkpoints written at step {done}; run the "
                            "same command again to resume the sweep"
                        )
                        break
                    if not running:
                        write(f"every run has stopped (non-finite) by step {done}")
                        break
            if not interrupted:
                rows = [
                    runs.final_row(k, runs.run_state(state, k), fid_reference, inception_weights)
                    for k in range(num_runs)
                ]
                if primary:
                    summary = sweep_summary.rank(rows, sort_by)
                    table = sweep_summary.markdown(
                        summary, f"{root}: {num_runs} runs of {base.num_steps} steps"
                    )
                    sweep_summary.write(root, summary, table)
                    write(table)
        finally:
            runs.close()
            bar.close()
        return state


def reference_fid(
    run_dir: Path, config: Config, reference: str, inception_weights: str | None
) -> float:
    """The run's FID against reference statistics (as `scripts/evaluate.py gan --metric fid --ref`
    measures it) from `eval_num` images of its latest checkpoint."""
    from jaxgan.tasks.gan.benchmark import evaluate_gan

    with contextlib.redirect_stdout(io.StringIO()):  # evaluate_gan prints its own table
        record = evaluate_gan(
            str(run_dir),
            metric=["fid"],
            num=config.eval_num,
            ref=reference,
            inception_weights=inception_weights,
        )
    return record["metrics"]["fid"]


def log_line(step: int, values: dict[str, np.ndarray], seconds: float, images: int) -> str:
    """One line for all runs: each shown loss run by run ('-' for a stopped run), then the speed."""
    shown = []
    for key in ("d_loss", "g_loss", "rec_loss"):
        if key in values:
            shown.append(
                f"{key} "
                + " ".join(f"{v:.3f}" if a else "-" for v, a in zip(values[key], values["active"]))
            )
    return (
        f"step {step}: {' | '.join(shown)} | "
        f"{1000 * seconds:.0f} ms/step, {images / seconds:.0f} img/s"
    )
