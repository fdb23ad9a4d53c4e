"""Checkpoints written before the state named its models by role (format 1) still load and resume
exactly; an unknown format is refused with a message naming the file."""

from __future__ import annotations

import json
import shutil

import orbax.checkpoint as ocp
import pytest

from jaxgan import checkpoint, loading, run_info, trainer
from tests.helpers import assert_same_final_arrays


def write_format_1(workdir, step: int) -> None:
    """Rewrite `workdir` as the jaxgan before format 2 wrote it: only checkpoint `step`, holding the
    format-1 layout (`generator`, `discriminator` with `batch_stats`), and run.json version 1."""
    _, state, _ = loading.restore_training_state(workdir, step)
    shutil.rmtree(workdir / "checkpoints")
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute())
    meta = {"format_version": 1, "step": step, "data_position": step, "skipped_examples": 0}
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(checkpoint.layout_v1(state)), meta=ocp.args.JsonSave(meta)
        ),
    )
    manager.wait_until_finished()
    manager.close()
    info = json.loads((workdir / run_info.RUN_FILE).read_text())
    (workdir / run_info.RUN_FILE).write_text(json.dumps({**info, "format_version": 1}))


def test_a_format_1_checkpoint_resumes_bit_for_bit(trained_workdir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(trained_workdir, old)
    write_format_1(old, 4)
    config = run_info.read_run_info(old)["config"]
    _, state, _ = loading.restore_training_state(old, 4)
    assert sorted(state.models) == ["discriminator", "generator"]
    trainer.train(config, old)  # resumes at step 4, runs to 8 and saves format 2
    assert_same_final_arrays(trained_workdir, old, 8)
    assert run_info.read_run_info(old)["format_version"] == checkpoint.FORMAT_VERSION


def test_an_unknown_format_is_refused_naming_the_file(trained_workdir, tmp_path):
    workdir = tmp_path / "future"
    shutil.copytree(trained_workdir, workdir)
    info = json.loads((workdir / run_info.RUN_FILE).read_text())
    (workdir / run_info.RUN_FILE).write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"run\.json: checkpoint format version 99, "
        r"but this jaxgan reads versions 1, 2",
    ):
        loading.restore_training_state(workdir)
