"""Training itself is the same: jaxgan's compiled step and torch_ref/train.py's loop (the seed's),
started from the same weights (converted) and fed the same batches and latents (numpy arrays from
jaxgan.data, not either framework's RNG), end with the same weights, running statistics and Adam
moments.

float64, 20 steps, without and with DiffAugment (the same host draws in both): every step's losses
and every tensor at the end (models, EMA, BatchNorm statistics, Adam moments and steps) within 1e-8
of the tensor's largest magnitude. Measured with these settings (2-core CPU, 2026-11-25): jaxgan
against PyTorch differs by at most 2.3e-15, and reordering the examples of each batch moves
PyTorch's own tensors by up to 2.4e-15, so anything near 1e-8 would be a real difference in the
algorithm. float32, the first step only: what is computed before any update (D's losses and outputs,
G's BatchNorm statistics) within 1e-5 relative; gradients, read off Adam's first moment (with
beta1 = 0.5, exp_avg = grad / 2 exactly), within 10 x max(PyTorch float32's own error, 1e-6) of a
float64 reference, per tensor in norm, as parity_tests/test_gradients.py asks; what comes after D's
update (G's loss, D's third statistics update) within 1e-3, because a float32 gradient at rounding
level can flip the sign of an Adam step and move a weight by 2 x lr. Longer float32 runs are not
compared: float32 GAN training magnifies rounding (reordering each batch moves PyTorch's own float32
weights by up to 20% and its losses by 2e-3 by step 20), and jaxgan's float32 Adam keeps beta2 as
float32(0.999) and forms 1 - beta2 and 1 - beta2**t in float32 where PyTorch uses float64 (1.3e-5
relative).
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np
import pytest
import torch

from jaxgan import config as config_lib
from jaxgan import convert_state, sharding
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import make_source
from jaxgan.state import make_modules, param_dtype
from jaxgan.tasks import get_task
from torch_ref import train as torch_train

STEPS = 20
OVERRIDES = dict(data="photos", nc=3, nz=16, ngf=8, ndf=8, batch_size=8, ema_decay=0.9, seed=3)
METRICS = ("d_loss", "d_loss_real", "d_loss_fake", "d_x", "d_g_z1", "g_loss", "d_g_z2")
BEFORE_UPDATE = (
    "d_loss",
    "d_loss_real",
    "d_loss_fake",
    "d_x",
    "d_g_z1",
)  # computed before D's Adam step
FLOAT64_TOLERANCE = 1e-8


# The seed's recipe, DiffAugment, and the GAN toolkit's losses, penalties and optimiser settings.
VARIANTS = {
    "plain": {},
    "diffaugment": {"augment": "color,translation,cutout"},
    "hinge_ttur_decay": {
        "loss": "hinge",
        "g_lr": 1e-4,
        "d_lr": 4e-4,
        "g_beta1": 0.0,
        "d_beta2": 0.9,
        "lr_decay_steps": 30,
    },
    "warmup_cosine": {"warmup_steps": 5, "lr_decay_steps": 25, "lr_schedule": "cosine"},
    "least_squares_lazy_r1": {"loss": "least_squares", "r1_gamma": 1.0, "r1_every": 2},
    "wasserstein_r1": {"loss": "wasserstein", "r1_gamma": 10.0},
    "spectral_norm_hinge": {"spectral_norm": "discriminator", "loss": "hinge"},
    "spectral_norm_both": {"spectral_norm": "both"},
    "spectral_norm_without_batchnorm": {
        "spectral_norm": "discriminator",
        "discriminator_batchnorm": False,
    },
    "wasserstein_gp_n_critic": {"loss": "wasserstein", "gradient_penalty": 10.0, "n_critic": 2},
    "conditional_projection": {"data": "digits", "num_classes": 10},
    "conditional_batchnorm": {
        "data": "digits",
        "num_classes": 10,
        "class_conditioning": "batchnorm",
    },
}


def make_config(dtype: str, **changes) -> config_lib.Config:
    return config_lib.load(
        "dcgan32", {k: str(v) for k, v in {**OVERRIDES, "dtype": dtype, **changes}.items()}
    )


def start_from_torch(config: config_lib.Config):
    """The seed's initialisation (torch_ref's `weights_init`) as a torch_ref checkpoint and as a
    jaxgan state."""
    start = convert_state.checkpoint_to_numpy(
        torch_train.to_checkpoint(torch_train.new_run(config))
    )
    return start, convert_state.state_from_torch(start)[1]


def compiled_step(config: config_lib.Config):
    """jaxgan's step compiled as the trainer compiles it (so the compilation cache serves both test
    modules)."""
    return sharding.compile_step(
        get_task(config.task).step(config, make_modules(config)), sharding.make_mesh()
    )


def make_batches(config: config_lib.Config, steps: int) -> list[dict[str, np.ndarray]]:
    batches = Batches(
        make_source(config),
        config.batch_size,
        config.resolved_data_seed,
        latent_seed=config.seed,
        latent_dtype=param_dtype(config),
        **get_task(config.task).batch_options(config),
    )
    return [batches.batch(step) for step in range(steps)]


@contextlib.contextmanager
def one_torch_thread():
    """The 2 CI cores are shared by the workers; PyTorch's spinning threads would fight over
    them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_torch(
    config: config_lib.Config, start: dict, batches: list
) -> tuple[dict, list[dict[str, float]]]:
    """torch_ref's loop from a converted checkpoint: (final checkpoint as numpy, metrics of each
    step)."""
    run = torch_train.restore(
        torch_train.new_run(config), convert_state.checkpoint_to_tensors(start)
    )
    with one_torch_thread():
        metrics = [
            {
                k: float(v)
                for k, v in torch_train.train_step(
                    run,
                    b["images"],
                    b["latents"],
                    b.get("augment"),
                    b.get("penalty_mix"),
                    b.get("labels"),
                ).items()
            }
            for b in batches
        ]
    return convert_state.checkpoint_to_numpy(torch_train.to_checkpoint(run)), metrics


def tensors(checkpoint: dict, prefix: str = "") -> dict[str, np.ndarray]:
    """Every array of a torch_ref checkpoint (numpy), by path, for element-wise comparison."""
    found = {}
    for key, value in checkpoint.items():
        path = f"{prefix}/{key}"
        if isinstance(value, dict):
            found.update(tensors(value, path))
        elif isinstance(value, np.ndarray):
            found[path] = value
    return found


def relative_differences(reference: dict, other: dict) -> dict[str, float]:
    """max |a - b| over max |reference|, per tensor of two torch_ref checkpoints with the same
    layout."""
    expected, found = tensors(reference), tensors(other)
    assert sorted(expected) == sorted(found)
    return {
        path: float(
            np.max(np.abs(found[path].astype(np.float64) - value))
            / max(float(np.max(np.abs(value))), np.finfo(np.float64).tiny)
        )
        for path, value in expected.items()
    }


def assert_same_training_state(reference: dict, other: dict, tolerance: float) -> None:
    """Both checkpoints at the same step, every tensor within `tolerance` of its largest
    magnitude."""
    for key in ("step", "data_position", "seeds", "config"):
        assert other[key] == reference[key], key
    worst = {
        path: value
        for path, value in relative_differences(reference, other).items()
        if value > tolerance
    }
    assert not worst, f"tensors beyond {tolerance}: {worst}"


@pytest.fixture(scope="module", params=list(VARIANTS))
def float64_runs(request):
    with jax.enable_x64(True):
        config = make_config("float64", **VARIANTS[request.param])
        start, state = start_from_torch(config)
        step = compiled_step(config)
        batches = make_batches(config, STEPS)
        jax_metrics = []
        for batch in batches:
            state, metrics = step(state, batch)
            jax_metrics.append({k: float(v) for k, v in metrics.items()})
        jax_final = convert_state.state_to_torch(config, state)
    torch_final, torch_metrics = run_torch(config, start, batches)
    return dict(
        config=config,
        start=start,
        jax_final=jax_final,
        jax_metrics=jax_metrics,
        torch_final=torch_final,
        torch_metrics=torch_metrics,
    )


def test_float64_losses_agree_at_every_step(float64_runs):
    for step, (jax_values, torch_values) in enumerate(
        zip(float64_runs["jax_metrics"], float64_runs["torch_metrics"])
    ):
        assert jax_values["finite"] == 1.0
        penalties = tuple(name for name in ("d_r1", "d_gp") if name in torch_values)
        assert penalties == tuple(name for name in ("d_r1", "d_gp") if name in jax_values)
        for name in METRICS + penalties:
            scale = max(abs(torch_values[name]), np.finfo(np.float64).tiny)  # lazy R1 is 0
            difference = abs(jax_values[name] - torch_values[name]) / scale
            assert difference <= FLOAT64_TOLERANCE, (
                step,
                name,
                jax_values[name],
                torch_values[name],
            )


def test_float64_final_weights_statistics_and_adam_moments_agree(float64_runs):
    torch_final, jax_final = float64_runs["torch_final"], float64_runs["jax_final"]
    assert torch_final["step"] == STEPS
    assert_same_training_state(torch_final, jax_final, FLOAT64_TOLERANCE)
    config = float64_runs["config"]
    for name in ("generator", "discriminator"):
        counts = {
            k: int(v) for k, v in torch_final[name].items() if k.endswith("num_batches_tracked")
        }
        # G: one batch per critic update; D: real, detached fake (and WGAN-GP's interpolates) per
        # critic update, then the fake again for G's loss.
        per_update = 2 + (config.gradient_penalty > 0)
        per_step = config.n_critic if name == "generator" else per_update * config.n_critic + 1
        has_batchnorm = name == "generator" or config.discriminator_batchnorm
        assert bool(counts) == has_batchnorm, (name, counts)
        assert set(counts.values()) <= {per_step * STEPS}, (name, counts)
        updates = config.n_critic if name == "discriminator" else 1
        for state in torch_final[f"{name}_optimizer"]["state"].values():
            assert float(state["step"]) == updates * STEPS


def test_float64_variants_train_with_their_own_settings(float64_runs):
    """Each model's Adam keeps its own lr and betas (the base lr, not the decayed one), and lazy R1
    acts on every r1_every-th step only."""
    config, final = float64_runs["config"], float64_runs["torch_final"]
    for name, prefix in (("generator", "g_"), ("discriminator", "d_")):
        group = final[f"{name}_optimizer"]["param_groups"][0]
        own = [getattr(config, prefix + field) for field in ("lr", "beta1", "beta2")]
        shared = [config.lr, config.beta1, config.beta2]
        expected = [s if o < 0 else o for o, s in zip(own, shared)]
        assert [group["lr"], *group["betas"]] == expected
    penalties = [metrics.get("d_r1") for metrics in float64_runs["jax_metrics"]]
    if config.r1_gamma:
        assert all((p > 0) == (step % config.r1_every == 0) for step, p in enumerate(penalties))
    else:
        assert set(penalties) == {None}


def test_float64_run_moves_the_weights_far_beyond_the_tolerance(float64_runs):
    """The comparison means something: every parameter, EMA parameter and BatchNorm statistic
    changed by 1e-4 of its size or more, every spectral-norm vector moved, and no Adam moment is
    zero."""
    start, final = float64_runs["start"], float64_runs["torch_final"]
    models = ("generator", "discriminator", "ema_generator")
    moved = relative_differences({k: final[k] for k in models}, {k: start[k] for k in models})
    sizes = {path: value.size for path, value in tensors({k: final[k] for k in models}).items()}
    for path, value in moved.items():
        if path.endswith(("._u", "._v")):  # power-iteration estimates: converged at init
            assert value > 0 or sizes[path] == 1, path  # a 1-vector is always +-1
        elif not path.endswith("num_batches_tracked"):
            assert value > 1e-4, path
    for name in ("generator_optimizer", "discriminator_optimizer"):
        for state in final[name]["state"].values():
            assert np.all(np.abs(state["exp_avg"]) > 0) and np.all(state["exp_avg_sq"] > 0)


@pytest.fixture(scope="module")
def float32_first_step():
    config = make_config("float32")
    start, state = start_from_torch(config)
    (batch,) = make_batches(config, 1)
    state, metrics = compiled_step(config)(state, batch)
    jax_after = convert_state.state_to_torch(config, state)
    torch_after, (torch_metrics,) = run_torch(config, start, [batch])
    config64 = config.replace(dtype="float64")
    batch64 = {"images": batch["images"], "latents": batch["latents"].astype(np.float64)}
    reference, _ = run_torch(
        config64, {**start, "config": config64.to_dict()}, [batch64]
    )  # same weights, float64
    return dict(
        jax=jax_after,
        jax_metrics={k: float(v) for k, v in metrics.items()},
        torch=torch_after,
        torch_metrics=torch_metrics,
        reference=reference,
    )


def test_float32_first_step_before_any_update(float32_first_step):
    jax_metrics, torch_metrics = (
        float32_first_step["jax_metrics"],
        float32_first_step["torch_metrics"],
    )
    for name in BEFORE_UPDATE:
        assert abs(jax_metrics[name] - torch_metrics[name]) <= 1e-5 * abs(torch_metrics[name]), name
    generator = {
        k: v for k, v in float32_first_step["torch"]["generator"].items() if "running" in k
    }
    differences = relative_differences(
        generator, {k: float32_first_step["jax"]["generator"][k] for k in generator}
    )
    assert generator and max(differences.values()) <= 1e-5, differences


def test_float32_first_step_after_the_discriminator_update(float32_first_step):
    jax_metrics, torch_metrics = (
        float32_first_step["jax_metrics"],
        float32_first_step["torch_metrics"],
    )
    for name in ("g_loss", "d_g_z2"):
        assert abs(jax_metrics[name] - torch_metrics[name]) <= 1e-3 * abs(torch_metrics[name]), name
    discriminator = {
        k: v for k, v in float32_first_step["torch"]["discriminator"].items() if "running" in k
    }
    jax_values = {k: float32_first_step["jax"]["discriminator"][k] for k in discriminator}
    assert discriminator and max(relative_differences(discriminator, jax_values).values()) <= 1e-3


@pytest.mark.parametrize("model", ["discriminator", "generator"])
def test_float32_first_step_gradients_match_a_float64_reference(float32_first_step, model):
    def gradients(checkpoint):  # Adam's first step from zero moments: exp_avg = (1 - beta1) * grad
        states = checkpoint[f"{model}_optimizer"]["state"]
        return [states[i]["exp_avg"].astype(np.float64) / 0.5 for i in sorted(states)]

    assert make_config("float32").beta1 == 0.5
    reference = gradients(float32_first_step["reference"])
    for index, (jax_grad, torch_grad, exact) in enumerate(
        zip(gradients(float32_first_step["jax"]), gradients(float32_first_step["torch"]), reference)
    ):
        jax_error = np.linalg.norm(jax_grad - exact) / np.linalg.norm(exact)
        torch_error = np.linalg.norm(torch_grad - exact) / np.linalg.norm(exact)
        assert jax_error <= 10 * max(torch_error, 1e-6), (model, index, jax_error, torch_error)


def test_parameter_order_is_the_tables():
    """Adam's state is keyed by parameter index: PyTorch's parameters() order must be the
    table's."""
    run = torch_train.new_run(make_config("float32"))
    for model, arch in (
        (run.generator, get_task("gan").arch(run.config, "generator")),
        (run.discriminator, get_task("gan").arch(run.config, "discriminator")),
    ):
        names = [name for name, _ in model.named_parameters()]
        assert names == [entry.torch_key for entry in convert_state.parameter_entries(arch)]
