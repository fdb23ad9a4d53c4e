"""The one cadence of every training loop (single runs and sweeps): when to log, sample, evaluate
and checkpoint, how long the run will take, and what the log says.

`jaxgan.trainer` (one run) and `jaxgan.sweep_train` (K stacked runs) both drive their steps through
`Cadence`, so the two keep the same schedule, duration line, log names and final line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from jaxgan.config import Config


class Moments(NamedTuple):
    """What the loop does after a step."""

    log: bool
    sample: bool
    evaluate: bool
    save: bool

    def any(self) -> bool:
        return self.log or self.sample or self.evaluate or self.save


class Cadence:
    """After step `done`: log every `log_every`, sample every `sample_every`, evaluate every
    `eval_every` (when on), checkpoint every `checkpoint_every`; all four at the last step; a
    checkpoint on a stop."""

    def __init__(self, config: Config):
        self.config = config

    def after(self, done: int, stopping: bool = False) -> Moments:
        config, last = self.config, done == self.config.num_steps
        return Moments(
            log=done % config.log_every == 0 or last,
            sample=done % config.sample_every == 0 or last,
            evaluate=bool(config.eval_every) and (done % config.eval_every == 0 or last),
            save=done % config.checkpoint_every == 0 or last or stopping,
        )


class StepTimer:
    """Seconds per step since the last log."""

    def __init__(self, start: int):
        self.last_time, self.last_step = time.perf_counter(), start

    def lap(self, done: int) -> float:
        now = time.perf_counter()
        seconds = (now - self.last_time) / max(done - self.last_step, 1)
        self.last_time, self.last_step = now, done
        return seconds


class TimedBatches:
    """The batch iterator, counting the time the loop waits for each batch (`speed/data_wait_ms`):
    time the host is blocked on data, an upper bound on the time the devices idle for it (dispatch
    is asynchronous)."""

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
    """The run's expected duration from its measured step time: steps 2 to 11 of this segment (the
    first compiles), then the rest of the run at that speed, printed once."""

    MEASURED_STEPS = 10

    def __init__(self, start: int, num_steps: int):
        self.start, self.num_steps, self.started, self.first = (
            start,
            num_steps,
            time.perf_counter(),
            None,
        )

    def wants(self, done: int) -> bool:
        return (
            done in (self.start + 1, self.start + 1 + self.MEASURED_STEPS) and done < self.num_steps
        )

    def mark(self, done: int) -> str | None:
        now = time.perf_counter()
        if done == self.start + 1:
            self.first = now
            return None
        seconds = (now - self.first) / self.MEASURED_STEPS
        remaining = self.num_steps - done
        return (
            f"step time {1000 * seconds:.0f} ms (steps {self.start + 2}-{done}): "
            f"the {remaining:,} steps left take about {format_duration(remaining * seconds)} "
            "on this machine, plus evaluations and checkpoints "
            "(the progress bar's ETA follows the actual speed)"
        )


def format_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 1:
        return f"{seconds:.0f} s"
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def final_line(
    workdir: Path, steps: int, grid: Path | None, results: dict[str, float], seconds: float
) -> str:
    """The run's last line: where the samples are and what its final evaluation measured."""
    line = (
        f"done: {steps:,} steps in {format_duration(seconds)}; "
        f"final samples: {grid or workdir / 'samples'}"
    )
    if results:
        shown = {
            "eval/digits_fid": "digits-FID {:.3f}",
            "eval/modes": "modes {:.0f}/10",
            "eval/fid": "FID {:.2f}",
            "eval/is": "IS {:.2f}",
            "eval/psnr": "PSNR {:.2f} dB",
            "eval/ssim": "SSIM {:.4f}",
        }
        measured = ", ".join(
            form.format(results[name]) for name, form in shown.items() if name in results
        )
        line += f"; {measured} (evaluated at step {results['step']:,})"
    return line + f"; checkpoints, metrics.jsonl and TensorBoard logs in {workdir}"


def log_scalars(
    names: dict[str, str], values: dict[str, float], seconds: float, batch_size: int
) -> dict[str, float]:
    """A step's metrics under their TensorBoard names (the task's `log_names`), with the speed."""
    scalars = {names.get(k, f"metrics/{k}"): v for k, v in values.items() if k != "finite"}
    scalars.update({"speed/img_per_s": batch_size / seconds, "speed/step_ms": 1000 * seconds})
    return scalars
