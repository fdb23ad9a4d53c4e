"""Sweeps: run k of a sweep is its single run, one compilation, resume, frozen non-finite runs,
summaries.

Tiny dcgan32 runs (widths 8, nz 16, nc 1, batch 8, K = 2-6, a few steps). Exactness is checked in
float64: each tensor within 1e-9 of its largest magnitude (measured: 5e-16 loop, 3e-15 vmap;
2-core CPU).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import (
    checkpoint,
    preemption,
    run_info,
    sharding,
    sweep,
    sweep_summary,
    sweep_train,
    trainer,
)
from jaxgan.config import ConfigError
from jaxgan.data.sources import make_source
from jaxgan.state import init_state, make_modules
from jaxgan.sweep import SweepError, SweepSpec, load_sweep_file, parse_sweep_flags
from jaxgan.tasks import get_task
from jaxgan.tasks.gan import GanTask
from scripts import train as train_script
from tests.helpers import ROOT, final_arrays, overrides, tiny_config

SETTINGS = dict(
    batch_size=8, num_samples=4, eval_num=50, log_every=1, checkpoint_every=2, sample_every=100
)
# Every kind of swept value: seeds (weights, latents, data order), Adam's hyperparameters, the EMA
# decay.
RUNS = (
    {"seed": 0},
    {"seed": 1, "lr": 1e-3, "ema_decay": 0.9},
    {"seed": 2, "data_seed": 0, "beta1": 0.3, "beta2": 0.99},
)
FLOAT64 = dict(data="fake", dtype="float64", num_steps=3, checkpoint_every=3)


def sweep_config(**changes):
    return tiny_config(**{**SETTINGS, **changes})


def assert_close(got: dict, expected: dict, bound: float) -> None:
    """Integer leaves equal; float leaves within `bound` of the tensor's largest magnitude."""
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        if not np.issubdtype(want.dtype, np.floating):
            np.testing.assert_array_equal(got[key], want, err_msg=key)
        else:
            assert np.abs(got[key] - want).max() <= bound * max(np.abs(want).max(), 1e-300), key


def assert_equal(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


# --- Specs and their errors -----------------------------------------------------------------------


def test_grid_from_flags_and_files(tmp_path):
    spec = parse_sweep_flags(["seed=0,1", "lr=1e-4, 2e-4"])
    assert spec.runs == (
        {"seed": 0, "lr": 1e-4},
        {"seed": 0, "lr": 2e-4},
        {"seed": 1, "lr": 1e-4},
        {"seed": 1, "lr": 2e-4},
    )
    assert spec.names() == [
        "00-seed=0-lr=0.0001",
        "01-seed=0-lr=0.0002",
        "02-seed=1-lr=0.0001",
        "03-seed=1-lr=0.0002",
    ]
    configs = spec.configs(sweep_config())
    assert [(c.seed, c.lr, c.resolved_data_seed) for c in configs] == [
        (0, 1e-4, 0),
        (0, 2e-4, 0),
        (1, 1e-4, 1),
        (1, 2e-4, 1),
    ]
    (tmp_path / "grid.json").write_text(json.dumps({"grid": {"seed": [0, 1], "lr": [1e-4, 2e-4]}}))
    assert load_sweep_file(tmp_path / "grid.json") == spec
    (tmp_path / "runs.json").write_text(json.dumps({"runs": list(RUNS)}))
    assert load_sweep_file(tmp_path / "runs.json").runs == RUNS


@pytest.mark.parametrize(
    "flag, message",
    [
        ("ngf=8,16", "'ngf' cannot be swept: it changes array shapes"),
        ("batch_size=8,16", "'batch_size' cannot be swept: it changes array shapes"),
        ("dtype=float32,float64", "'dtype' cannot be swept: it is compiled into the train step"),
        (
            "degradation=noise,jpeg",
            "'degradation' cannot be swept: it is compiled into the train step",
        ),
        ("data=digits,photos", "'data' cannot be swept: it chooses the data set"),
        (
            "num_steps=10,20",
            (
                "'num_steps' cannot be swept: it is shared by all runs of a sweep: "
                "set it with --config"
            ),
        ),
        (
            "learning_rate=1,2",
            "'learning_rate' cannot be swept: it is not a config field (sweepable fields: seed,",
        ),
        ("seed=0,zero", "config field 'seed' takes a int, got 'zero'"),
        ("seed", "expected FIELD=V1,V2,..."),
    ],
)
def test_bad_sweep_flags_are_errors_naming_the_field(flag, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_sweep_flags([flag])


def test_bad_sweeps_are_errors(tmp_path):
    base = sweep_config()
    with pytest.raises(SweepError, match="'lambda_rec' is read by task 'restore' only"):
        parse_sweep_flags(["lambda_rec=0.5,0.9"]).configs(base)
    with pytest.raises(SweepError, match=r"runs 0 and 1 have the same settings"):
        SweepSpec(({"seed": 1}, {"seed": 1, "lr": base.lr})).configs(base)
    with pytest.raises(
        SweepError, match=r"run 1 \(\{'seed': 1.5\}\): config field 'seed' must be int"
    ):
        SweepSpec(({"seed": 1}, {"seed": 1.5})).configs(base)
    with pytest.raises(SweepError, match="'ndf' cannot be swept"):
        SweepSpec(({"ndf": 8},)).configs(base)
    with pytest.raises(SweepError, match="seeds must lie in 0..2147483647"):
        SweepSpec(({"seed": -1},)).configs(base)
    with pytest.raises(SweepError, match=r"'seed' is swept twice"):
        parse_sweep_flags(["seed=0,1", "seed=2"])
    denoiser = base.replace(task="restore", lambda_adv=0.0)  # builds no D
    with pytest.raises(SweepError, match=r"run 1 .* needs a discriminator that the base config"):
        parse_sweep_flags(["lambda_adv=0,0.01"]).configs(denoiser)
    path = tmp_path / "sweep.json"
    path.write_text('{"grid": {"seed": [0, 1]}, "lr": [1]}')
    with pytest.raises(
        SweepError, match=f"sweep file {path}: expected one key, 'grid'.*found \\['grid', 'lr'\\]"
    ):
        load_sweep_file(path)
    path.write_text('{"grid": {"seed": [0, 1]')
    with pytest.raises(SweepError, match=f"sweep file {path}: not readable JSON"):
        load_sweep_file(path)
    with pytest.raises(SweepError, match=f"sweep file {tmp_path / 'none.json'} does not exist"):
        load_sweep_file(tmp_path / "none.json")


def test_script_refuses_bad_sweeps_before_writing(tmp_path, capsys):
    workdir = tmp_path / "sweep"
    command = ["--config", "dcgan32", "--workdir", str(workdir), *overrides(**SETTINGS)]
    with pytest.raises(SystemExit) as exit_info:
        train_script.main([*command, "--sweep", "seed=0,1", "--sweep", "ngf=8,16"])
    assert exit_info.value.code == 2
    assert (
        "error: --sweep 'ngf=8,16': 'ngf' cannot be swept: it changes array shapes"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        train_script.main(
            [*command, "--sweep", "seed=0,1", "--sweep-file", str(tmp_path / "sweep.json")]
        )
    assert "give --sweep flags or --sweep-file, not both" in capsys.readouterr().err
    assert not workdir.exists()


# --- Run k of a sweep is the single run -----------------------------------------------------------


@pytest.fixture(scope="module")
def single_runs_float64(tmp_path_factory):
    """The single runs of RUNS in float64 (fake data: the numbers, not the images, matter here):
    each one's final arrays and logged losses."""
    root = tmp_path_factory.mktemp("single64")
    base = sweep_config(**FLOAT64)
    runs = []
    with jax.enable_x64(True):
        for index, config in enumerate(SweepSpec(RUNS).configs(base)):
            trainer.train(config, root / str(index))
            runs.append((final_arrays(root / str(index)), logged_losses(root / str(index))))
    return runs


def logged_losses(workdir) -> dict[str, np.ndarray]:
    """Every logged loss of a workdir's metrics.jsonl, step by step."""
    lines = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    names = [name for name in lines[0] if name.startswith("loss/")]
    return {name: np.array([line[name] for line in lines]) for name in ["step", *names]}


def test_each_run_of_a_sweep_equals_its_single_run(single_runs_float64, tmp_path):
    spec = SweepSpec(RUNS)
    with jax.enable_x64(True):
        sweep_train.train_sweep(sweep_config(**FLOAT64), spec, tmp_path, mode="loop")
        runs = [final_arrays(tmp_path / name) for name in spec.names()]
    for got, (expected, _) in zip(runs, single_runs_float64):
        assert_close(got, expected, 1e-9)
    assert (
        runs[0][".rng"].tolist() != runs[1][".rng"].tolist()
    )  # the runs differ, as their settings do


def test_restoration_sweep_over_loss_weights_equals_single_runs(tmp_path):
    """The loss weights are per-run arrays too: a (vmapped) restorer sweep's run is its single
    run."""
    base = sweep_config(
        task="restore",
        data="fake",
        dtype="float64",
        num_steps=2,
        checkpoint_every=2,
        restorer_width=8,
        eval_num=4,
    )
    spec = parse_sweep_flags(["lambda_rec=0.5,0.999", "lambda_adv=0.01"])
    with jax.enable_x64(True):
        sweep_train.train_sweep(base, spec, tmp_path / "sweep", mode="vmap")
        trainer.train(spec.configs(base)[0], tmp_path / "single")  # lambda_rec 0.5, lambda_adv 0.01
        assert_close(
            final_arrays(tmp_path / "sweep" / spec.names()[0]),
            final_arrays(tmp_path / "single"),
            1e-9,
        )
    losses = [
        sweep_summary.latest_values(tmp_path / "sweep" / name / "metrics.jsonl")["loss/g"]
        for name in spec.names()
    ]
    assert losses[0] != losses[1]


@pytest.mark.parametrize("data", ["photos", "digits", "fake"])
def test_each_sweep_stream_reads_the_source_its_data_seed_makes(data):
    base = sweep_config(data=data)
    batches = sweep_train.SweepBatches(
        make_source(base), base, parse_sweep_flags(["seed=0,3"]).configs(base), slice(None)
    )
    for seed, stream in batches.streams.items():
        single = make_source(base.replace(seed=seed))
        assert [stream.source.load(i, p).tobytes() for i, p in ((0, 0), (1, 5))] == [
            single.load(i, p).tobytes() for i, p in ((0, 0), (1, 5))
        ]


def test_a_sweep_over_seeds_on_photos_equals_its_single_runs(tmp_path):
    """Photos' random crops are keyed by the data seed: each run's stream crops with its own data
    seed (seed 1 through data_seed = seed, data_seed 2 given), not the base config's (0), as its
    single run does."""
    base = sweep_config(data="photos", dtype="float64", num_steps=3, checkpoint_every=3)
    spec = SweepSpec(({"seed": 1}, {"seed": 0, "data_seed": 2}))
    with jax.enable_x64(True):
        sweep_train.train_sweep(base, spec, tmp_path / "sweep", mode="loop")
        for index, (config, name) in enumerate(zip(spec.configs(base), spec.names())):
            trainer.train(config, tmp_path / str(index))
            assert_close(
                final_arrays(tmp_path / "sweep" / name), final_arrays(tmp_path / str(index)), 1e-9
            )


def test_a_restoration_sweep_over_data_seeds_on_photos_equals_its_single_run(tmp_path):
    """The restoration configs' default data, photos, under a (vmapped) sweep of data seeds: run 1
    is its single run."""
    base = sweep_config(
        task="restore",
        data="photos",
        dtype="float64",
        num_steps=2,
        checkpoint_every=2,
        restorer_width=8,
        eval_num=4,
    )
    spec = parse_sweep_flags(["data_seed=1,2"])
    with jax.enable_x64(True):
        sweep_train.train_sweep(base, spec, tmp_path / "sweep", mode="vmap")
        trainer.train(spec.configs(base)[1], tmp_path / "single")  # data_seed 2
        assert_close(
            final_arrays(tmp_path / "sweep" / spec.names()[1]),
            final_arrays(tmp_path / "single"),
            1e-9,
        )


def sweep_on_four_devices(tmp_path, runs: list[dict], mode: str) -> subprocess.CompletedProcess:
    """scripts/train.py sweeping `runs` (float64) in `mode` on 4 simulated devices."""
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": runs}))
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        "--config",
        "dcgan32",
        "--workdir",
        str(tmp_path / "sweep"),
        *overrides(**{**SETTINGS, **FLOAT64}),
        "--sweep-file",
        str(tmp_path / "sweep.json"),
        "--sweep-mode",
        mode,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"},
    )


def test_vmapped_sweep_over_a_runs_by_data_mesh_equals_single_runs(single_runs_float64, tmp_path):
    """K = 2 runs on 4 simulated devices: mesh runs 2 x data 2, jax.vmap; the numbers do not depend
    on it."""
    result = sweep_on_four_devices(tmp_path, list(RUNS[:2]), "vmap")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 runs (vmap)" in result.stdout and "mesh {'runs': 2, 'data': 2}" in result.stdout
    with jax.enable_x64(True):
        runs = [final_arrays(tmp_path / "sweep" / name) for name in SweepSpec(RUNS[:2]).names()]
    for got, (expected, _) in zip(runs, single_runs_float64):
        assert_close(got, expected, 1e-9)


def test_the_loop_over_a_runs_by_data_mesh_equals_single_runs(single_runs_float64, tmp_path):
    """K = 6 runs on 4 simulated devices: mesh runs 2 x data 2, each device row looping over its 3
    runs; RUNS sit at positions 0, 4 and 5 (both rows, several loop indices), and their arrays and
    every logged loss equal their single runs'."""
    runs = [RUNS[0], {"seed": 3}, {"seed": 4}, {"seed": 5}, RUNS[1], RUNS[2]]
    result = sweep_on_four_devices(tmp_path, runs, "loop")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "6 runs (loop)" in result.stdout and "mesh {'runs': 2, 'data': 2}" in result.stdout
    names = SweepSpec(tuple(runs)).names()
    with jax.enable_x64(True):
        for position, (arrays, losses) in zip((0, 4, 5), single_runs_float64):
            assert_close(final_arrays(tmp_path / "sweep" / names[position]), arrays, 1e-9)
            assert_close(logged_losses(tmp_path / "sweep" / names[position]), losses, 1e-9)


def convolutions_compiled(step, state, batch) -> int:
    """How many convolutions the compiled programs of a sweep step hold."""
    return sum(
        program.as_text().count(" convolution(")
        for program in step.compile(state, batch).programs.values()
    )


def test_the_loop_compiles_one_run_whatever_the_number_of_runs():
    """The loop's programs hold the single run's convolutions once, for K = 2 as for K = 5: its
    compile time does not grow with K."""
    base = sweep_config(ngf=4, ndf=4, data="fake")
    modules = make_modules(base)
    single = sharding.compile_step(get_task(base.task).step(base, modules), sharding.make_mesh())
    state = jax.eval_shape(functools.partial(init_state, base, modules))
    batch = {
        "images": jax.ShapeDtypeStruct((base.batch_size, 32, 32, 1), jnp.uint8),
        "latents": jax.ShapeDtypeStruct((base.batch_size, base.nz), jnp.float32),
    }
    counts = [single.lower(state, batch).compile().as_text().count(" convolution(")]
    for num_runs in (2, 5):
        mesh = sharding.make_sweep_mesh(num_runs)
        configs = [base.replace(seed=seed) for seed in range(num_runs)]
        step = sweep.make_sweep_step(base, modules, num_runs, mesh, "loop")
        stacked = {
            key: jax.ShapeDtypeStruct((num_runs, *value.shape), value.dtype)
            for key, value in batch.items()
        }
        counts.append(
            convolutions_compiled(step, sweep.init_sweep(base, configs, modules, mesh), stacked)
        )
    assert counts[0] > 0 and counts == [counts[0]] * 3


# --- One compilation, resume, per-run workdirs, summary -------------------------------------------


@pytest.fixture(scope="module")
def digits_sweeps(tmp_path_factory):
    """A 2-run digits sweep of 6 steps; the same sweep stopped at 4, one run's step 4 lost, then
    resumed."""
    root = tmp_path_factory.mktemp("sweeps")
    compiled, original = [], sweep_train.make_sweep_step
    spec = parse_sweep_flags(["seed=3,4"])
    base = sweep_config(num_steps=6)

    def recording(*args, **kwargs):
        compiled.append(original(*args, **kwargs))
        return compiled[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sweep_train, "make_sweep_step", recording)
        state = sweep_train.train_sweep(base, spec, root / "whole")
        sweep_train.train_sweep(base.replace(num_steps=4), spec, root / "resumed")
        shutil.rmtree(
            root / "resumed" / spec.names()[1] / "checkpoints" / "4"
        )  # as if killed while saving it
        sweep_train.train_sweep(base, spec, root / "resumed")
    return dict(root=root, spec=spec, base=base, compiled=compiled, state=state)


def test_a_sweep_compiles_its_step_once(digits_sweeps):
    assert [fn.compilations() for fn in digits_sweeps["compiled"]] == [[1, 1, 1]] * 3
    assert {leaf.shape[0] for leaf in jax.tree.leaves(digits_sweeps["state"].runs)} == {
        2
    }  # K = 2 stacked


def test_resume_restacks_at_the_latest_common_step(digits_sweeps, capsys):
    root, spec = digits_sweeps["root"], digits_sweeps["spec"]
    for name in spec.names():
        assert_equal(final_arrays(root / "resumed" / name), final_arrays(root / "whole" / name))
        assert checkpoint.Checkpoints(root / "resumed" / name).all_steps() == [2, 4, 6]
    # Without --sweep flags, scripts/train.py resumes the sweep its workdir holds (here: nothing
    # left to do).
    assert (
        train_script.main(
            [
                "--config",
                "dcgan32",
                "--workdir",
                str(root / "whole"),
                *overrides(**SETTINGS, num_steps=6),
            ]
        )
        == 0
    )
    assert "the ranked runs in summary.md" in capsys.readouterr().out
    with pytest.raises(SweepError, match="holds another sweep"):
        sweep_train.train_sweep(
            digits_sweeps["base"], parse_sweep_flags(["seed=3,5"]), root / "whole"
        )
    with pytest.raises(ConfigError, match="lr: 0.0002 -> 0.001"):
        sweep_train.train_sweep(digits_sweeps["base"].replace(lr=1e-3), spec, root / "whole")


def test_each_run_is_a_complete_workdir(digits_sweeps):
    from jaxgan.sampling import generate, load_generator
    from jaxgan.tasks import get_task

    root, spec = digits_sweeps["root"] / "whole", digits_sweeps["spec"]
    for config, name in zip(spec.configs(digits_sweeps["base"]), spec.names()):
        workdir = root / name
        assert run_info.read_run_info(workdir)["config"] == config
        arch, variables = load_generator(workdir)
        assert arch == get_task(config.task).arch(config, "generator")
        assert sorted(p.name for p in (workdir / "samples").glob("*.png")) == [
            "samples_0000006.png"
        ]
        assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
        assert json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 6
    images = generate(root / spec.names()[0], num=3)
    assert images.shape == (3, 32, 32, 1) and np.isfinite(images).all()
    assert not np.array_equal(images, generate(root / spec.names()[1], num=3))
    assert json.loads((root / "sweep.json").read_text())["runs"] == [{"seed": 3}, {"seed": 4}]


def test_summary_ranks_runs_by_digits_fid(digits_sweeps):
    root = digits_sweeps["root"] / "whole"
    summary = json.loads((root / "summary.json").read_text())
    assert summary["sorted_by"] == "eval/digits_fid" and summary["order"] == "ascending"
    fids = [row["metrics"]["eval/digits_fid"] for row in summary["runs"]]
    assert fids == sorted(fids) and [row["rank"] for row in summary["runs"]] == [1, 2]
    for row in summary["runs"]:
        assert row["status"] == "finished" and row["step"] == 6
        assert {"loss/d", "loss/g", "eval/modes", "eval/digits_is"} <= set(row["metrics"])
        logged = sweep_summary.latest_values(root / row["name"] / "metrics.jsonl")
        assert row["metrics"]["loss/g"] == logged["loss/g"]
    table = (root / "summary.md").read_text()
    assert "ranked by eval/digits_fid (lower is better)" in table
    assert "| rank | run | seed | status | step | digits_fid |" in table


def test_a_signal_saves_every_run_at_the_current_step(digits_sweeps, tmp_path, monkeypatch, capsys):
    def requested(self, step):
        self.signal = signal.SIGTERM if step >= 3 else None
        return self.signal is not None

    monkeypatch.setattr(preemption.StopRequest, "requested", requested)
    sweep_train.train_sweep(digits_sweeps["base"], digits_sweeps["spec"], tmp_path)
    for name in digits_sweeps["spec"].names():
        assert checkpoint.Checkpoints(tmp_path / name).all_steps() == [2, 3]
    assert "stopping on signal SIGTERM: checkpoints written at step 3" in capsys.readouterr().out
    assert not (tmp_path / "summary.json").exists()  # the summary waits for the end


def test_fid_against_reference_statistics_ranks_the_summary(digits_sweeps, tmp_path, monkeypatch):
    """--ref: each run's FID (scripts/evaluate.py's, stubbed here: Inception is not the point) is
    logged and ranks the summary; a missing statistics file fails before anything is written."""
    with pytest.raises(
        FileNotFoundError, match=f"statistics file {tmp_path / 'none.npz'} does not exist"
    ):
        sweep_train.train_sweep(
            digits_sweeps["base"],
            digits_sweeps["spec"],
            tmp_path / "sweep",
            fid_reference=str(tmp_path / "none.npz"),
        )
    assert not (tmp_path / "sweep").exists()
    np.savez(tmp_path / "stats.npz", mu=np.zeros(2048), sigma=np.eye(2048))
    weights = tmp_path / "inception.pth"  # never read: the stub below measures
    weights.write_bytes(b"weights")
    measured = []

    def reference_fid(run_dir, config, reference, weights):
        measured.append((run_dir.name, reference, weights))
        return 10.0 - config.seed  # the later seed ranks first

    monkeypatch.setattr(sweep_train, "reference_fid", reference_fid)
    sweep_train.train_sweep(
        digits_sweeps["base"],
        digits_sweeps["spec"],
        tmp_path / "sweep",
        fid_reference=str(tmp_path / "stats.npz"),
        inception_weights=str(weights),
    )
    names = digits_sweeps["spec"].names()
    assert measured == [(name, str(tmp_path / "stats.npz"), str(weights)) for name in names]
    summary = json.loads((tmp_path / "sweep" / "summary.json").read_text())
    assert summary["sorted_by"] == "eval/ref_fid"
    assert [(row["name"], row["metrics"]["eval/ref_fid"]) for row in summary["runs"]] == [
        (names[1], 6.0),
        (names[0], 7.0),
    ]


def test_ranking_rules():
    rows = [
        sweep_summary.run_row(i, f"run{i}", {"seed": i}, ROOT / "nowhere", 5, None)
        for i in range(4)
    ]
    for row, modes in zip(rows, [7.0, 9.0, None, 8.0]):
        if modes is not None:
            row["metrics"]["eval/modes"] = modes
    rows[3]["status"] = "stopped: non-finite at step 5"
    summary = sweep_summary.rank(rows, "modes")
    assert [row["name"] for row in summary["runs"]] == [
        "run1",
        "run0",
        "run2",
        "run3",
    ]  # higher is better
    assert summary["order"] == "descending"
    assert "| 1 | run1 | 1 | finished | 5 | 9/10 |" in sweep_summary.markdown(summary, "sweep")
    with pytest.raises(ConfigError, match="--sort-by 'fidd': not a metric of a sweep; choose from"):
        sweep_summary.resolve_sort_key("fidd")


# --- Runs that go non-finite ----------------------------------------------------------------------


def poisoned_task_step(config):
    """The real GAN step, except that the run whose learning rate is 3e-4 turns NaN at its step
    4."""
    from jaxgan.tasks.gan.step import gan_step

    def step(models, state, batch):
        state, metrics = gan_step(models, state, batch)
        poisoned = (
            state.models["generator"].opt_state.hyperparams["learning_rate"] == jnp.float32(3e-4)
        ) & (state.step >= 4)
        params = jax.tree.map(
            lambda p: p + jnp.where(poisoned, jnp.nan, 0.0), state.models["generator"].params
        )
        metrics["finite"] = metrics["finite"] & ~poisoned
        return state.replace(
            models={**state.models, "generator": state.models["generator"].replace(params=params)}
        ), metrics

    return step


def test_runs_that_diverge_stop_while_the_others_finish(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        GanTask,
        "step",
        lambda self, config, modules: functools.partial(poisoned_task_step(config), modules),
    )
    spec = parse_sweep_flags(
        ["lr=2e-4,3e-4,inf"]
    )  # healthy; NaN at step 4; NaN at step 1 (Adam with lr = inf)
    state = sweep_train.train_sweep(sweep_config(data="fake", num_steps=6), spec, tmp_path)
    healthy, late, early = (tmp_path / name for name in spec.names())
    assert jax.device_get(state.active).tolist() == [True, False, False]
    assert jax.device_get(state.runs.step).tolist() == [6, 3, 0]  # frozen at their last good step
    for path, leaf in jax.tree_util.tree_leaves_with_path(
        state.runs
    ):  # NaNs never entered the stacked state
        if leaf.dtype.kind == "f" and "hyperparams" not in jax.tree_util.keystr(
            path
        ):  # lr = inf is a setting
            assert bool(jnp.isfinite(leaf).all()), jax.tree_util.keystr(path)
    output = capsys.readouterr().out
    assert "3 runs (loop)" in output  # the CPU's form
    assert (
        "run 01-lr=0.0003 stopped: non-finite losses or parameters at step 4; "
        "its last good state (step 3)" in output
    )
    assert "run 02-lr=inf stopped: non-finite losses or parameters at step 1" in output
    assert checkpoint.Checkpoints(healthy).all_steps() == [2, 4, 6]
    assert checkpoint.Checkpoints(late).all_steps() == [2, 3] and checkpoint.Checkpoints(
        early
    ).all_steps() == [0]
    assert all(np.isfinite(a).all() for a in final_arrays(late).values() if a.dtype.kind == "f")
    assert [
        json.loads(line)["step"] for line in (late / "metrics.jsonl").read_text().splitlines()
    ] == [1, 2, 3]
    stopped = json.loads((tmp_path / "stopped.json").read_text())
    assert {name: info["step"] for name, info in stopped.items()} == {
        "01-lr=0.0003": 3,
        "02-lr=inf": 0,
    }
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(row["name"], row["status"]) for row in summary["runs"]] == [
        ("00-lr=0.0002", "finished"),
        ("01-lr=0.0003", "stopped: non-finite at step 4"),
        ("02-lr=inf", "stopped: non-finite at step 1"),
    ]
    # Resuming keeps the stopped runs stopped, at their saved last good states.
    sweep_train.train_sweep(sweep_config(data="fake", num_steps=8), spec, tmp_path)
    assert "run 01-lr=0.0003 stayed stopped at step 3" in capsys.readouterr().out
    assert (
        checkpoint.Checkpoints(healthy).latest_step() == 8
        and checkpoint.Checkpoints(late).latest_step() == 3
    )
