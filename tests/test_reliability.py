"""No lost work: failures outside the step, the whole state's finiteness, run history, data
fingerprints, one run per workdir, and a resume that computes no fresh state."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import checkpoint, run_info, trainer
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import make_source
from jaxgan.state import init_state, make_modules
from jaxgan.tasks.gan import GanTask
from jaxgan.tasks.gan.step import gan_step
from jaxgan.workdir_lock import WorkdirBusyError, WorkdirLock
from tests.helpers import ROOT, assert_same_final_arrays, run_train, tiny_config


def failing_sampler(fail_at_call: int):
    """GanTask.make_sampler's stand-in: real grids, but the `fail_at_call`-th grid hits a full
    disk."""
    real = GanTask.make_sampler
    calls = []

    def make(self, config, modules, mesh):
        sample = real(self, config, modules, mesh)

        def sampler(state):
            calls.append(1)
            if len(calls) == fail_at_call:
                raise OSError(28, "No space left on device")
            return sample(state)

        return sampler

    return make


def test_failure_outside_the_step_writes_a_checkpoint_first(tmp_path, monkeypatch):
    config = tiny_config(num_steps=12, sample_every=4, checkpoint_every=100)
    monkeypatch.setattr(GanTask, "make_sampler", failing_sampler(fail_at_call=2))  # step 8's grid
    with pytest.raises(
        RuntimeError,
        match=r"No space left on device \(at step 8, outside the train step\); a "
        r"checkpoint of step 8 was written first",
    ):
        trainer.train(config, tmp_path / "failed")
    assert checkpoint.Checkpoints(tmp_path / "failed").all_steps() == [8]
    monkeypatch.undo()
    trainer.train(config.replace(num_steps=8), tmp_path / "reference")
    assert_same_final_arrays(
        tmp_path / "reference", tmp_path / "failed", 8
    )  # the state at the failure


@pytest.fixture(scope="module")
def one_step():
    config = tiny_config()
    models = make_modules(config)
    state = jax.jit(lambda: init_state(config, models))()
    batch = Batches(make_source(config), config.batch_size, 0, latent_seed=0, nz=config.nz).batch(0)
    return state, batch, jax.jit(lambda state, batch: gan_step(models, state, batch))


def poison(tree, needle: str, value: float = np.nan):
    """`tree` with the first leaf whose path contains `needle` set to `value`."""
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_leaves_with_path(tree)]
    target = next(path for path in paths if needle in path)
    return jax.tree_util.tree_map_with_path(
        lambda path, x: jnp.full_like(x, value) if jax.tree_util.keystr(path) == target else x, tree
    )


@pytest.mark.parametrize(
    "part", ["none", "discriminator_running_var", "generator_adam_moment", "ema"]
)
def test_the_finiteness_flag_covers_everything_a_checkpoint_holds(one_step, part):
    state, batch, step = one_step
    if (
        part == "discriminator_running_var"
    ):  # D trains on batch statistics: its losses and params stay finite
        discriminator = state.models["discriminator"]
        collections = {"batch_stats": poison(discriminator.collections["batch_stats"], "var")}
        state = state.replace(
            models={**state.models, "discriminator": discriminator.replace(collections=collections)}
        )
    elif (
        part == "generator_adam_moment"
    ):  # an infinite nu makes Adam's update 0: the parameter stays finite
        opt_state = poison(state.models["generator"].opt_state, "nu", np.inf)
        state = state.replace(
            models={
                **state.models,
                "generator": state.models["generator"].replace(opt_state=opt_state),
            }
        )
    elif part == "ema":
        state = state.replace(ema_params=poison(state.ema_params, "kernel"))
    new_state, metrics = step(state, batch)
    assert bool(metrics["finite"]) == (part == "none")
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))
    params = (new_state.models["generator"].params, new_state.models["discriminator"].params)
    assert all(
        bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params)
    )  # what the old check covered


def test_run_json_keeps_the_history_of_segments(tmp_path):
    config = tiny_config(num_steps=4, sample_every=100)
    trainer.train(config, tmp_path / "run")
    trainer.train(config.replace(num_steps=8), tmp_path / "run")
    info = json.loads((tmp_path / "run" / run_info.RUN_FILE).read_text())
    segments = info["segments"]
    assert [(s["start_step"], s["end_step"]) for s in segments] == [(0, 4), (4, 8)]
    for segment in segments:
        assert {"jax", "flax"} <= set(segment["versions"]) and "git_commit" in segment
        assert segment["layout"] == "1 cpu device(s) in 1 process(es)" and segment["started"]
    assert info["config"]["num_steps"] == 8 and info["data"]["count"] == 1500


def write_folder(folder, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(
            folder / f"{i:03d}.png"
        )


def test_a_resume_on_changed_data_is_refused_unless_allowed(tmp_path):
    folder, workdir = tmp_path / "images", tmp_path / "run"
    write_folder(folder, 8)
    config = tiny_config(data=str(folder), batch_size=4, num_steps=2, sample_every=100)
    trainer.train(config, workdir)
    (folder / "007.png").rename(folder / "new.png")  # same count, another name
    with pytest.raises(
        trainer.DataChangedError, match=r"the same number of files \(8\) but other names or sizes"
    ):
        trainer.train(config.replace(num_steps=4), workdir)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(folder / "extra.png")
    result = run_train(workdir, data=str(folder), batch_size=4, num_steps=4, sample_every=100)
    assert result.returncode == 1
    assert f"{workdir}: the data changed since this run started" in result.stderr
    assert (
        "had 8 examples and has 9 now" in result.stderr and "--allow-data-change" in result.stderr
    )
    assert checkpoint.Checkpoints(workdir).all_steps() == [2]  # nothing trained on the changed data
    with pytest.warns(UserWarning, match="resuming on changed data"):
        trainer.train(config.replace(num_steps=4), workdir, allow_data_change=True)
    info = run_info.read_run_info(workdir)
    assert info["data"]["count"] == 9 and checkpoint.Checkpoints(workdir).all_steps() == [2, 4]


def test_a_second_run_on_a_workdir_in_use_is_refused(tmp_path):
    workdir = tmp_path / "run"
    with WorkdirLock(workdir):
        result = run_train(workdir, num_steps=2)
        with pytest.raises(
            WorkdirBusyError, match=f"pid {os.getpid()} on host {socket.gethostname()}"
        ):
            trainer.train(tiny_config(num_steps=2), workdir)
    assert result.returncode == 1
    assert (
        f"{workdir} is in use by another run (pid {os.getpid()} on host {socket.gethostname()})"
        in result.stderr
    )
    assert not (workdir / "checkpoints").exists()


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom jaxgan.workdir_lock import WorkdirLock\n"
            f"with WorkdirLock({str(tmp_path)!r}):\n    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(WorkdirBusyError):
        WorkdirLock(tmp_path).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)
    with WorkdirLock(tmp_path):  # the kernel released the dead holder's lock
        pass


def test_a_resume_restores_into_an_abstract_state(tmp_path, monkeypatch):
    config = tiny_config(num_steps=3, sample_every=100)
    trainer.train(config, tmp_path / "run")

    def no_fresh_state(*args):
        raise AssertionError("a resume must not compute a fresh state")

    monkeypatch.setattr(trainer, "fresh_state", no_fresh_state)
    state = trainer.train(config.replace(num_steps=5), tmp_path / "run")
    assert int(state.step) == 5
