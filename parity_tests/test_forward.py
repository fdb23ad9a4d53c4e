"""Forward outputs and BatchNorm running statistics: jaxgan's Flax models against torch_ref.

Each axis is varied once around a base case (32x32, nc 3, batch 4, width 8): image size 64 and 128,
nc 1, batch sizes 1 and 7, and every restorer form (encoder-decoder with and without skips, residual
with and without BatchNorm; residual unshuffle 1 and 4 in their own test). Bounds (max abs
difference): float32 1e-5, float64 1e-10, for outputs and for running statistics after a train-mode
forward.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import traverse_util

from jaxgan import convert
from parity_tests.helpers import (
    jax_forward,
    make_inputs,
    make_torch_model,
    role,
    state_dict_numpy,
    to_jax_input,
    torch_forward,
)

BOUND = {"float32": 1e-5, "float64": 1e-10}
BASE = dict(size=32, nc=3, batch=4)
VARIANTS = [dict(), dict(size=64), dict(size=128), dict(nc=1), dict(batch=1), dict(batch=7)]
MODELS = [
    ("generator", False),
    ("discriminator", False),
    ("restorer", False),
    ("restorer", True),
    ("residual", False),
    ("residual_bn", False),
]
# Class-conditional models: the base case and 64x64 (their labels, not the sizes, are what is new).
CONDITIONAL_CASES = [
    (name, variant)
    for name in (
        "conditional_generator",
        "conditional_batchnorm_generator",
        "conditional_both_generator",
        "projection_discriminator",
    )
    for variant in (dict(), dict(size=64, batch=7))
]


def case_id(variant: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "base"


@pytest.mark.parametrize(
    "name,skips,variant",
    [(name, skips, variant) for name, skips in MODELS for variant in VARIANTS]
    + [(name, False, variant) for name, variant in CONDITIONAL_CASES],
    ids=lambda v: case_id(v) if isinstance(v, dict) else str(v),
)
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_forward_matches_torch(name, skips, variant, train, dtype):
    case = {**BASE, **variant}
    module = make_torch_model(name, case["size"], case["nc"], skips=skips, dtype=dtype)
    inputs = make_inputs(name, case["batch"], case["size"], case["nc"], dtype=dtype)
    got, updates = jax_forward(name, state_dict_numpy(module), inputs, train, dtype)
    expected = torch_forward(
        module, inputs, train
    )  # in train mode this updates module's statistics
    assert got.shape == expected.shape
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected, rtol=0, atol=BOUND[dtype])
    if train:  # torch's module now holds the updated running statistics and counts
        converted = traverse_util.flatten_dict(updates.get("batch_stats", {}))
        for entry in convert.table(convert.infer_arch(role(name), module.state_dict())):
            if entry.flax_path[0] != "batch_stats":
                continue
            want = module.state_dict()[entry.torch_key].numpy()
            np.testing.assert_allclose(
                np.asarray(converted[entry.flax_path[1:]]),
                want,
                rtol=0,
                atol=BOUND[dtype],
                err_msg=entry.torch_key,
            )


def test_discriminator_logits_are_the_seeds_sigmoid_input():
    """D returns logits of shape (N,); sigmoid(logits) is the seed's output (checked above), and the
    logits themselves are not squashed."""
    module = make_torch_model("discriminator")
    inputs = make_inputs("discriminator", 5)
    state_dict = {k: v.numpy() for k, v in module.state_dict().items()}
    arch = convert.infer_arch("discriminator", state_dict)
    logits = convert.build_model(arch).apply(
        convert.torch_to_flax(arch, state_dict), inputs[0].transpose(0, 2, 3, 1), train=False
    )
    assert logits.shape == (5,)
    module.eval()
    import torch

    with torch.no_grad():
        pre_sigmoid = module.main[:-1](torch.from_numpy(inputs[0])).numpy().reshape(-1)
    np.testing.assert_allclose(np.asarray(logits), pre_sigmoid, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "name,skips",
    MODELS + [("conditional_generator", False), ("projection_discriminator", False)],
    ids=lambda v: str(v),
)
def test_bfloat16_compute_tracks_float32(name, skips):
    """bfloat16 compute (parameters and BatchNorm statistics stay float32): outputs in bfloat16,
    within bfloat16's rounding (8 bits of mantissa, compounded over the layers: 0.1 max abs, 0.02
    mean) of float32."""
    import jax.numpy as jnp

    module = make_torch_model(name, skips=skips)
    inputs = [to_jax_input(x) for x in make_inputs(name, 4)]
    state_dict = state_dict_numpy(module)
    arch = convert.infer_arch(role(name), state_dict)
    variables = convert.torch_to_flax(arch, state_dict)
    full = np.asarray(convert.build_model(arch).apply(variables, *inputs, train=False))
    model = convert.build_model(arch, jnp.bfloat16)
    assert np.dtype(model.param_dtype) == np.float32
    half, updates = model.apply(variables, *inputs, train=True, mutable=["batch_stats"])
    statistics = [
        leaf for leaf in jax.tree.leaves(updates) if jnp.issubdtype(leaf.dtype, jnp.floating)
    ]
    assert (bool(statistics) == ("batch_stats" in variables)) and all(
        leaf.dtype == np.float32 for leaf in statistics
    )  # statistics stay float32
    half = model.apply(variables, *inputs, train=False)
    assert half.dtype == (
        jnp.float32 if role(name) == "discriminator" else jnp.bfloat16
    )  # D's logits: float32
    error = np.abs(np.asarray(half, np.float32) - full)
    assert (
        error.max() < 0.1 and error.mean() < 0.02 and error.max() > 0
    )  # really computed in bfloat16


@pytest.mark.parametrize("name", ["residual_u1", "residual_u4"])
def test_residual_restorer_unshuffle_factors_match_torch(name, dtype):
    """Pixel-unshuffle's channel order and the transposed convolution back, at factors 1 and 4."""
    module = make_torch_model(name, 32, 3, dtype=dtype)
    inputs = make_inputs(name, 3, 32, 3, dtype=dtype)
    got, _ = jax_forward(name, state_dict_numpy(module), inputs, False, dtype)
    np.testing.assert_allclose(got, torch_forward(module, inputs, False), rtol=0, atol=BOUND[dtype])
