"""Scale-out: the same numbers on 1 device, 8 simulated devices and 2 processes x 4 devices (gloo).

float64, K = 5 steps of dcgan64 (with its DiffAugment) at small widths and 32x32: parameters, batch
statistics, both Adam states, EMA and losses agree within 1e-9 (max abs difference over each
tensor's largest magnitude). float32: quantities computed before any update agree within 1e-5
relative in step 1, G's loss within 1e-3, and the losses of 5 steps within 1e-3 relative (rounding
grows with each Adam step; docs/scaling.md). A checkpoint written by 8 devices resumes on 1 device
and on 2 processes x 2 devices, same numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from jaxgan import checkpoint, run_info
from tests.helpers import ROOT, final_arrays

# dcgan64 as shipped (DiffAugment on: its host draws must be as device- and process-invariant as the
# batches), at 32x32: the layouts' numbers do not depend on the image size, the suite's time does.
SETTINGS = dict(
    image_size=32,
    ngf=8,
    ndf=8,
    nz=16,
    nc=1,
    batch_size=16,
    log_every=1,
    checkpoint_every=5,
    sample_every=1000,
    num_samples=4,
    ema_decay=0.9,
    loader_threads=2,
    eval_every=0,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(workdir, devices: int, processes: int = 1, **changes) -> list[str]:
    """Run scripts/train.py --config dcgan64 on `processes` x `devices` simulated CPU devices;
    return outputs."""
    settings = {**SETTINGS, **changes}
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--config",
        "dcgan64",
        "--workdir",
        str(workdir),
        *[f"--config.{k}={v}" for k, v in settings.items()],
    ]
    env = {
        **os.environ,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONUNBUFFERED": "1",
    }
    if processes == 1:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return [result.stdout + result.stderr]
    port = free_port()
    running = [
        subprocess.Popen(
            [
                *command,
                "--coordinator-address",
                f"127.0.0.1:{port}",
                "--num-processes",
                str(processes),
                "--process-id",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(processes)
    ]
    outputs = [p.communicate(timeout=600)[0] for p in running]
    assert [p.returncode for p in running] == [0] * processes, (
        outputs[0][-3000:] + outputs[-1][-3000:]
    )
    return outputs


def losses(workdir) -> dict[int, dict[str, float]]:
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row for row in rows}  # a resumed step's later line wins


def assert_states_close(got: dict, expected: dict, bound: float) -> None:
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        if not np.issubdtype(want.dtype, np.floating):
            np.testing.assert_array_equal(got[key], want, err_msg=key)
            continue
        scale = max(np.abs(want).max(), np.finfo(want.dtype).tiny)
        assert np.abs(got[key] - want).max() <= bound * scale, key


LOSSES = ("loss/d", "loss/g", "loss/d_real", "loss/d_fake", "d/x", "d/g_z1", "d/g_z2")


@pytest.fixture(scope="module")
def float64_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaling64")
    runs = {"1": root / "one", "8": root / "eight", "2x4": root / "two_by_four"}
    launch(runs["1"], 1, num_steps=5, dtype="float64")
    launch(runs["8"], 8, num_steps=5, dtype="float64")
    outputs = launch(runs["2x4"], 4, processes=2, num_steps=5, dtype="float64")
    assert run_info.read_run_info(runs["1"])[
        "config"
    ].augment  # the draws are part of what must agree
    assert "8 cpu device(s) in 2 process(es)" in outputs[0] and "mesh {'data': 8}" in outputs[0]
    assert "jaxgan:" not in outputs[1]  # only process 0 talks
    return runs


def test_float64_same_state_on_1_8_and_2x4_devices(float64_runs):
    reference = final_arrays(float64_runs["1"])
    assert any("opt_state" in key and "mu" in key for key in reference)  # Adam moments are compared
    for layout in ("8", "2x4"):
        assert_states_close(final_arrays(float64_runs[layout]), reference, 1e-9)
        expected, got = losses(float64_runs["1"]), losses(float64_runs[layout])
        assert sorted(got) == [1, 2, 3, 4, 5]
        for step in expected:
            for name in LOSSES:
                assert abs(got[step][name] - expected[step][name]) <= 1e-9 * abs(
                    expected[step][name]
                ), (step, name)


def test_checkpoint_from_8_devices_resumes_on_1_and_on_2x2(float64_runs, tmp_path):
    launch(
        float64_runs["1"], 1, num_steps=8, dtype="float64"
    )  # the reference continues on its own layout
    expected = final_arrays(float64_runs["1"])
    for name, devices, processes in (("on_one", 1, 1), ("on_two_by_two", 2, 2)):
        workdir = tmp_path / name
        shutil.copytree(float64_runs["8"], workdir)
        outputs = launch(workdir, devices, processes=processes, num_steps=8, dtype="float64")
        assert "resuming from step 5" in outputs[0]
        assert_states_close(final_arrays(workdir), expected, 1e-9)


def test_float32_first_step_and_losses_agree_across_layouts(tmp_path):
    runs = {"1": (1, 1), "8": (8, 1), "2x4": (4, 2)}
    for name, (devices, processes) in runs.items():
        launch(tmp_path / name, devices, processes=processes, num_steps=5, dtype="float32")
    reference = losses(tmp_path / "1")
    for name in ("8", "2x4"):
        got = losses(tmp_path / name)
        for key in ("loss/d_real", "loss/d_fake", "d/x", "d/g_z1"):  # before any update
            assert abs(got[1][key] - reference[1][key]) <= 1e-5 * abs(reference[1][key]), (
                name,
                key,
            )
        assert abs(got[1]["loss/g"] - reference[1]["loss/g"]) <= 1e-3 * abs(reference[1]["loss/g"])
        for step in range(2, 6):
            for key in ("loss/d", "loss/g"):
                assert abs(got[step][key] - reference[step][key]) <= 1e-3 * abs(
                    reference[step][key]
                ), (step, key)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_to_one_process_stops_all_at_the_same_step(tmp_path, stop_signal):
    """A preempted host (SIGTERM) or Ctrl-C (SIGINT) reaches process 1 only; through JAX's
    preemption sync point both processes save the same step together and exit cleanly (no hang at
    the next collective)."""
    settings = {**SETTINGS, "num_steps": 100_000, "checkpoint_every": 100_000, "ema_decay": 0.0}
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--config",
        "dcgan32",
        "--workdir",
        str(tmp_path / "run"),
        *[f"--config.{k}={v}" for k, v in settings.items()],
    ]
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    running = [
        subprocess.Popen(
            [
                *command,
                "--coordinator-address",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    for line in running[0].stdout:  # process 0 logs every step; wait until training is under way
        if "step 3:" in line:
            break
    running[1].send_signal(stop_signal)
    outputs = [p.communicate(timeout=300)[0] for p in running]
    assert [p.returncode for p in running] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    assert "stopping on signal" in outputs[0]
    steps = checkpoint.Checkpoints(tmp_path / "run").all_steps()
    assert len(steps) == 1 and steps[0] >= 3


REPLICA_CHECK = (
    """
import sys
import jax
import numpy as np
from jaxgan import sharding

port, process_id, differ = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "differ"
sharding.initialize_distributed(f"127.0.0.1:{port}", 2, process_id)
mesh = sharding.make_mesh()
value = np.arange(6.0, dtype=np.float32) + (process_id if differ else 0)  # each process's own copy
tree = {"kernel": jax.make_array_from_process_local_data("""
    """sharding.replicated(mesh), value, value.shape)}
try:
    sharding.check_replicas_agree(tree, step=7)
except RuntimeError as error:
    print("MISMATCH", error)
else:
    print("AGREE")
"""
)


@pytest.mark.parametrize("differ", [False, True])
def test_processes_whose_parameters_differ_stop_with_a_clear_error(differ):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    port, mode = free_port(), "differ" if differ else "same"
    running = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA_CHECK, str(port), str(i), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in running]
    assert [p.returncode for p in running] == [0, 0], outputs
    for output in outputs:  # both processes see it, so neither writes a checkpoint the other lacks
        if differ:
            assert "MISMATCH step 7: the processes' copies of the parameters differ" in output, (
                output
            )
        else:
            assert "AGREE" in output, output
