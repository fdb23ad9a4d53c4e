"""A run moves between the frameworks mid-training and ends where it would have ended, in float64:

- 10 steps in JAX (`scripts/train.py`), `scripts/convert.py state2torch`, 10 more in PyTorch
  (`torch_ref/train.py --resume`) end within 1e-8 of 20 steps in JAX;
- 10 steps in PyTorch, `scripts/convert.py state2jax`, 10 more in JAX (`scripts/train.py --workdir`)
  end within 1e-8 of 20 steps in PyTorch.

Everything runs through the command-line entry points, in this process. The conversion itself is
exact both ways (bit for bit), and refuses what it cannot carry, writing nothing.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
import torch

from jaxgan import convert_state
from jaxgan.loading import restore_training_state
from parity_tests.test_training_trajectory import (
    OVERRIDES,
    assert_same_training_state,
    one_torch_thread,
    tensors,
)
from scripts import convert as convert_script
from scripts import train as train_script
from torch_ref import train as torch_train

HALF, STEPS = 10, 20
TOLERANCE = 1e-8
SETTINGS = {
    **OVERRIDES,
    "dtype": "float64",
    "log_every": HALF,
    "sample_every": 1000,
    "checkpoint_every": 1000,
    "num_samples": 4,
    "loader_threads": 0,
}


def flags(workdir: Path, steps: int) -> list[str]:
    return [
        "--config",
        "dcgan32",
        "--workdir",
        str(workdir),
        f"--config.num_steps={steps}",
        *(f"--config.{k}={v}" for k, v in SETTINGS.items()),
    ]


def train_jax(workdir: Path, steps: int) -> None:
    assert train_script.main(flags(workdir, steps)) == 0


def train_torch(workdir: Path, steps: int, resume: Path | None = None) -> None:
    assert (
        torch_train.main(flags(workdir, steps) + (["--resume", str(resume)] if resume else [])) == 0
    )


def convert(*args) -> int:
    return convert_script.main([str(a) for a in args])


def jax_checkpoint(workdir: Path, step: int) -> dict:
    """A jaxgan workdir's checkpoint in the torch_ref layout (numpy), for comparison."""
    config, state, _ = restore_training_state(workdir, step)
    return convert_state.state_to_torch(config, state)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross_framework")
    with jax.enable_x64(True), one_torch_thread():
        # JAX -> PyTorch: 10 steps in JAX, converted, 10 in PyTorch; the JAX run goes on to 20 as
        # the reference.
        train_jax(root / "jax", HALF)
        assert convert("state2torch", root / "jax", root / "jax_at_10.pth") == 0
        train_torch(root / "torch_from_jax", STEPS, resume=root / "jax_at_10.pth")
        train_jax(root / "jax", STEPS)
        # PyTorch -> JAX: 10 steps in PyTorch, converted, 10 in JAX; the PyTorch run goes on to 20.
        train_torch(root / "torch", HALF)
        assert (
            convert(
                "state2jax",
                torch_train.checkpoint_path(root / "torch", HALF),
                root / "jax_from_torch",
            )
            == 0
        )
        train_jax(root / "jax_from_torch", STEPS)
        train_torch(root / "torch", STEPS)
    return root


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_jax_then_torch_ends_where_jax_ends(runs, x64):
    reference = jax_checkpoint(runs / "jax", STEPS)
    moved = convert_state.load_torch_checkpoint(
        torch_train.checkpoint_path(runs / "torch_from_jax", STEPS)
    )
    assert moved["step"] == STEPS
    assert_same_training_state(reference, moved, TOLERANCE)


def test_torch_then_jax_ends_where_torch_ends(runs, x64):
    reference = convert_state.load_torch_checkpoint(
        torch_train.checkpoint_path(runs / "torch", STEPS)
    )
    moved = jax_checkpoint(runs / "jax_from_torch", STEPS)
    assert moved["step"] == STEPS
    assert_same_training_state(reference, moved, TOLERANCE)


def test_the_runs_trained(runs, x64):
    """Both halves moved the weights well beyond the tolerance (the comparisons above are not
    vacuous)."""
    first, last = jax_checkpoint(runs / "jax", HALF), jax_checkpoint(runs / "jax", STEPS)
    change = np.max(
        np.abs(last["generator"]["main.0.weight"] - first["generator"]["main.0.weight"])
    )
    assert change > 1e3 * TOLERANCE * np.max(np.abs(first["generator"]["main.0.weight"]))


def test_jax_state_round_trips_exactly(runs, x64, tmp_path):
    config, state, _ = restore_training_state(runs / "jax", HALF)
    path = convert_state.save_torch_checkpoint(
        convert_state.state_to_torch(config, state), tmp_path / "state.pth"
    )
    loaded = torch.load(path, weights_only=True)  # plain tensors and values only
    back_config, back = convert_state.state_from_torch(loaded)
    assert back_config == config
    assert jax.tree.structure(back) == jax.tree.structure(state)
    for (key, original), converted in zip(
        jax.tree_util.tree_leaves_with_path(state), jax.tree.leaves(back)
    ):
        assert converted.dtype == original.dtype, jax.tree_util.keystr(key)
        assert np.array_equal(np.asarray(converted), np.asarray(original)), jax.tree_util.keystr(
            key
        )


def test_torch_checkpoint_round_trips_exactly(runs, x64):
    saved = convert_state.load_torch_checkpoint(torch_train.checkpoint_path(runs / "torch", HALF))
    back = convert_state.state_to_torch(*convert_state.state_from_torch(saved))
    saved_tensors, back_tensors = tensors(saved), tensors(back)
    assert sorted(saved_tensors) == sorted(back_tensors)
    for path, value in saved_tensors.items():
        assert back_tensors[path].dtype == value.dtype and np.array_equal(
            back_tensors[path], value
        ), path
    for name in ("generator_optimizer", "discriminator_optimizer"):
        for key in ("lr", "betas", "eps", "params"):
            assert back[name]["param_groups"][0][key] == saved[name]["param_groups"][0][key]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda c: c["generator_optimizer"]["state"][3].update(step=np.asarray(9, np.float32)),
            "state[3] (main.3.weight)",
        ),
        (
            lambda c: c["discriminator"].update({"main.2.weight": np.zeros((16, 8, 3, 3))}),
            "key 'main.2.weight'",
        ),
        (
            lambda c: c["generator_optimizer"]["state"][0].update(
                exp_avg_sq=np.zeros((16, 1, 4, 4))
            ),
            "generator_optimizer exp_avg_sq: key 'main.0.weight'",
        ),
        (lambda c: c["discriminator"].pop("main.0.weight"), "main.0.weight"),
        (
            lambda c: c["discriminator_optimizer"]["param_groups"][0].update(weight_decay=0.01),
            "weight_decay",
        ),
        (lambda c: c.update(data_position=3), "data position 3"),
        (
            lambda c: c["ema_generator"]["main.1.running_mean"].__iadd__(1),
            "ema_generator buffer 'main.1.running_mean'",
        ),
    ],
)
def test_state2jax_refuses_what_it_cannot_carry(runs, tmp_path, capsys, change, message):
    saved = convert_state.load_torch_checkpoint(torch_train.checkpoint_path(runs / "torch", HALF))
    change(saved)
    source = convert_state.save_torch_checkpoint(saved, tmp_path / "bad.pth")
    with jax.enable_x64(True):
        assert convert("state2jax", source, tmp_path / "workdir") == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "workdir").exists()


def test_state2jax_refuses_a_single_model_state_dict(runs, tmp_path, capsys):
    saved = torch.load(torch_train.checkpoint_path(runs / "torch", HALF), weights_only=True)
    torch.save(saved["generator"], tmp_path / "generator.pth")
    assert convert("state2jax", tmp_path / "generator.pth", tmp_path / "workdir") == 1
    assert "not a torch_ref training checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "workdir").exists()


def test_state2torch_never_overwrites_without_force(runs, tmp_path, capsys):
    existing = tmp_path / "existing.pth"
    existing.write_bytes(b"keep me")
    with jax.enable_x64(True):
        assert convert("state2torch", runs / "jax", existing) == 1
    assert "--force" in capsys.readouterr().err and existing.read_bytes() == b"keep me"


def test_torch_resume_refuses_a_different_config(runs, tmp_path, capsys):
    with one_torch_thread():
        code = torch_train.main(
            flags(tmp_path / "other", STEPS)
            + ["--config.ngf=16", "--resume", str(runs / "jax_at_10.pth")]
        )
    assert code == 1 and "ngf: 8 -> 16" in capsys.readouterr().err
    assert not torch_train.checkpoint_steps(tmp_path / "other")
