"""Checkpoints written before the state named its models by role (format 1), or before its settings
held the penalty weights (format 2), still load and resume exactly; an unknown format is refused
with a message naming the file."""

from __future__ import annotations

import json
import shutil

import orbax.checkpoint as ocp
import pytest

from jaxgan import checkpoint, loading, run_info, trainer
from tests.helpers import assert_same_final_arrays


def write_old_format(workdir, step: int, version: int) -> None:
    """Rewrite `workdir` as the jaxgan of format `version` wrote it: only checkpoint `step`, its
    settings without the penalty weights, in format 1's layout (`generator`, `discriminator` with
    `batch_stats`) for version 1, and run.json of that version."""
    _, state, _ = loading.restore_training_state(workdir, step)
    state = state.replace(settings={k: state.settings[k] for k in checkpoint.SETTINGS_BEFORE_3})
    shutil.rmtree(workdir / "checkpoints")
    manager = ocp.CheckpointManager((workdir / "checkpoints").absolute())
    meta = {"format_version": version, "step": step, "data_position": step, "skipped_examples": 0}
    layout = checkpoint.layout_v1(state) if version == 1 else state
    manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(layout), meta=ocp.args.JsonSave(meta)),
    )
    manager.wait_until_finished()
    manager.close()
    info = json.loads((workdir / run_info.RUN_FILE).read_text())
    (workdir / run_info.RUN_FILE).write_text(json.dumps({**info, "format_version": version}))


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_format_checkpoint_resumes_bit_for_bit(trained_workdir, tmp_path, version):
    old = tmp_path / "old"
    shutil.copytree(trained_workdir, old)
    write_old_format(old, 4, version)
    config = run_info.read_run_info(old)["config"]
    _, state, _ = loading.restore_training_state(old, 4)
    assert sorted(state.models) == ["discriminator", "generator"]
    assert float(state.settings["r1_gamma"]) == config.r1_gamma  # from the config
    trainer.train(config, old)  # resumes at step 4, runs to 8 and saves the current format
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
        r"but this jaxgan reads versions 1, 2, 3",
    ):
        loading.restore_training_state(workdir)
