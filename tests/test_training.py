"""The main job end to end: outputs of a run, exact resume after SIGKILL, SIGTERM, errors,
compilation."""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import checkpoint, run_info, sharding, trainer
from jaxgan.tasks.gan import GanTask
from tests.helpers import assert_same_final_arrays, run_train, tiny_config, train_command


def test_run_writes_checkpoints_events_and_grids(trained_workdir):
    assert checkpoint.Checkpoints(trained_workdir).all_steps() == [4, 8]
    info = run_info.read_run_info(trained_workdir)
    assert info["config"].num_steps == 8 and info["format_version"] == checkpoint.FORMAT_VERSION
    assert {"jax", "flax", "optax"} <= set(info["versions"])
    grids = sorted(p.name for p in (trained_workdir / "samples").glob("*.png"))
    assert grids == ["samples_0000004.png", "samples_0000008.png"]
    from PIL import Image

    grid = np.asarray(Image.open(trained_workdir / "samples" / grids[-1]))
    assert grid.shape == (4 * 34 + 2, 4 * 34 + 2)  # 16 samples of 32x32, 2-pixel padding, grayscale
    assert grid.std() > 0
    events = list((trained_workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboardX.proto import event_pb2

    tags = set()
    with open(events[0], "rb") as handle:  # TFRecord framing: length, crc, payload, crc
        data = handle.read()
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 8], "little")
        event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
        tags.update(value.tag for value in event.summary.value)
        offset += length + 16
    assert {
        "loss/d",
        "loss/g",
        "d/x",
        "d/g_z1",
        "d/g_z2",
        "speed/img_per_s",
        "speed/data_wait_ms",
        "samples",
        "_hparams_/experiment",
    } <= tags


def test_sigkill_then_resume_is_bit_for_bit(tmp_path):
    steps = dict(num_steps=12, checkpoint_every=4)
    reference = run_train(tmp_path / "reference", **steps)
    assert reference.returncode == 0, reference.stderr[-3000:]

    workdir = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(workdir, **steps, num_samples=4),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while (
        not (workdir / "checkpoints" / "4").is_dir()
        and time.time() < deadline
        and process.poll() is None
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    assert process.wait(60) == -signal.SIGKILL
    assert checkpoint.Checkpoints(workdir).latest_step() in (4, 8)  # killed mid-way
    # A checkpoint cut off mid-write lies in a temporary folder that is never listed or loaded.
    (workdir / "checkpoints" / "99.orbax-checkpoint-tmp-1").mkdir()
    resumed = run_train(workdir, **steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step" in resumed.stderr + resumed.stdout
    assert_same_final_arrays(tmp_path / "reference", workdir)


def test_sigkill_during_an_actual_save_resumes_from_the_previous_checkpoint(tmp_path):
    """A kill while orbax is writing checkpoint 4 (its temporary folder exists, the final name does
    not): the next run resumes from step 2 and ends bit for bit as an uninterrupted run. Wide models
    make the state about 80 MB, so the write lasts long enough to be hit."""
    steps = dict(num_steps=4, checkpoint_every=2, ngf=128, ndf=128, batch_size=4, sample_every=100)
    reference = run_train(tmp_path / "reference", **steps)
    assert reference.returncode == 0, reference.stderr[-3000:]
    workdir = tmp_path / "killed"
    process = subprocess.Popen(
        train_command(workdir, **steps), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoints, deadline = workdir / "checkpoints", time.time() + 300
    writing = []
    while not writing and time.time() < deadline and process.poll() is None:
        if (checkpoints / "2").is_dir():
            writing = [
                p for p in checkpoints.iterdir() if p.name.startswith("4.") and "tmp" in p.name
            ]
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    assert process.wait(60) == -signal.SIGKILL
    assert writing and not (checkpoints / "4").exists(), "the kill missed the save of step 4"
    assert checkpoint.Checkpoints(workdir).all_steps() == [2]
    resumed = run_train(workdir, **steps)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from step 2" in resumed.stderr + resumed.stdout
    assert_same_final_arrays(tmp_path / "reference", workdir)


def test_sigterm_checkpoints_the_current_step(tmp_path):
    workdir = tmp_path / "run"
    process = subprocess.Popen(
        train_command(workdir, num_steps=100_000, checkpoint_every=1000, log_every=1),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in process.stdout:
        if "step 5:" in line:
            break
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output[-3000:]
    assert "stopping on signal" in output
    steps = checkpoint.Checkpoints(workdir).all_steps()
    assert (
        len(steps) == 1 and 5 <= steps[0] < 1000
    )  # the step it was at, not a checkpoint_every multiple


def test_changed_config_is_refused_naming_fields(trained_workdir):
    result = run_train(trained_workdir, num_steps=8, ema_decay=0.9, lr=0.001, ngf=16)
    assert result.returncode != 0
    assert (
        "lr" in result.stderr and "ngf" in result.stderr and "num_steps" in result.stderr
    )  # lists what may change


def test_unknown_field_and_wrong_type_are_errors(tmp_path):
    result = run_train(tmp_path / "run", learning_rate=0.1)
    assert result.returncode == 2 and "unknown config field 'learning_rate'" in result.stderr
    assert "valid fields:" in result.stderr and "batch_size" in result.stderr
    result = run_train(tmp_path / "run", batch_size="many")
    assert result.returncode == 2 and "'batch_size' takes a int" in result.stderr
    assert not (tmp_path / "run").exists()


def poisoned_step(after: int):
    """The real GAN step, but parameters become NaN from step `after` on (a diverging run)."""
    from jaxgan.tasks.gan.step import gan_step as real

    def step(models, state, batch):
        state, metrics = real(models, state, batch)
        poison = jnp.where(state.step > after, jnp.nan, 0.0)
        params = jax.tree.map(lambda p: p + poison, state.models["generator"].params)
        state = state.replace(
            models={**state.models, "generator": state.models["generator"].replace(params=params)}
        )
        metrics["finite"] = metrics["finite"] & (state.step <= after)
        return state, metrics

    return step


def test_non_finite_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(
        GanTask,
        "step",
        lambda self, config, modules: functools.partial(poisoned_step(after=5), modules),
    )
    config = tiny_config(num_steps=12, log_every=1, checkpoint_every=4)
    with pytest.raises(trainer.NonFiniteError, match="step 6"):
        trainer.train(config, tmp_path / "run")
    assert checkpoint.Checkpoints(tmp_path / "run").all_steps() == [4]


def test_step_compiles_once_including_after_restore(tmp_path, monkeypatch):
    compiled = []
    original = sharding.compile_step

    def recording(*args, **kwargs):
        compiled.append(original(*args, **kwargs))
        return compiled[-1]

    monkeypatch.setattr(sharding, "compile_step", recording)
    config = tiny_config(num_steps=3, checkpoint_every=3, sample_every=100)
    trainer.train(config, tmp_path / "run")
    trainer.train(
        config.replace(num_steps=6), tmp_path / "run"
    )  # resumes from the restored checkpoint
    assert [fn._cache_size() for fn in compiled] == [1, 1]


def test_train_api_returns_final_state(tmp_path):
    import jaxgan

    state = jaxgan.train(tiny_config(num_steps=2, checkpoint_every=2), tmp_path / "run")
    assert int(state.step) == 2
    assert functools.reduce(
        lambda a, b: a and b,
        [bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.models["generator"].params)],
    )


def test_folder_data_errors_and_corrupt_files(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_train(tmp_path / "run", data=tmp_path / "empty")
    assert (
        result.returncode != 0
        and f"data folder {tmp_path / 'empty'} holds no images" in result.stderr
    )
    folder = tmp_path / "images"
    folder.mkdir()
    from PIL import Image

    for i in range(6):
        Image.fromarray(np.full((40, 40), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "2.png").write_bytes(b"not a png")
    result = run_train(tmp_path / "run", data=folder, num_steps=2, batch_size=8)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2.png" in result.stderr and "1 skipped so far" in result.stderr


def test_bfloat16_compute_trains_with_float32_parameters(tmp_path):
    state = trainer.train(
        tiny_config(num_steps=3, checkpoint_every=3, dtype="bfloat16"), tmp_path / "run"
    )
    leaves = jax.tree.leaves((state.models, state.ema_params))
    assert {leaf.dtype for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)} == {
        jnp.dtype("float32")
    }
    assert all(
        bool(jnp.all(jnp.isfinite(leaf)))
        for leaf in leaves
        if jnp.issubdtype(leaf.dtype, jnp.floating)
    )
    assert int(state.step) == 3


def test_run_tells_its_expected_duration_and_ends_with_samples_and_metrics(tmp_path):
    """After ten measured steps a line gives the step time and the time left; the last line names
    the final grid and the evaluation at the last step (digits-FID and modes on the built-in
    digits)."""
    workdir = tmp_path / "run"
    result = run_train(workdir, num_steps=14, sample_every=7, eval_every=10, eval_num=50)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert re.search(
        r"step time \d+ ms \(steps 2-11\): the 3 steps left take about \d+ s on this machine",
        output,
    )
    last = [line for line in result.stdout.splitlines() if line.strip()][-1]
    grid = workdir / "samples" / "samples_0000014.png"
    assert grid.is_file()
    assert re.fullmatch(
        rf"done: 14 steps in \d+ (s|min); final samples: {re.escape(str(grid))}; "
        r"digits-FID \d+\.\d{3}, modes \d+/10 \(evaluated at step 14\); checkpoints, metrics.jsonl "
        rf"and TensorBoard logs in {re.escape(str(workdir))}",
        last,
    ), last
    evaluated = [
        json.loads(line)["step"]
        for line in (workdir / "metrics.jsonl").read_text().splitlines()
        if "eval/digits_fid" in line
    ]
    assert evaluated == [10, 14]  # every eval_every steps and at the last step
