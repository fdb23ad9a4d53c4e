"""Gradients of a loss with respect to every parameter and the input: jaxgan against torch_ref.

The loss is a fixed random projection of the train-mode output (BatchNorm on batch statistics, where
weight gradients cancel heavily). float64: each tensor within 1e-9 of its largest magnitude. float32
carries real rounding error, so it is compared with a float64 reference per tensor, in norm:
||g32 - g64|| / ||g64|| of jaxgan must stay within 10 x max(PyTorch float32's own value, 1e-6).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgan import convert
from parity_tests.helpers import (
    make_inputs,
    make_torch_model,
    precision,
    role,
    state_dict_numpy,
    to_jax_input,
)

SEEDS = (0, 1, 2)
MODELS = [
    ("generator", False),
    ("discriminator", False),
    ("restorer", True),
    ("residual", False),
    ("residual_bn", False),
]


def zero_gradients(name: str) -> set[str]:
    """Parameters whose gradient is 0 by construction: a bias followed by BatchNorm on batch
    statistics (the mean subtraction removes it)."""
    if name != "residual_bn":
        return set()
    return {f"blocks.{i}.conv{j}.bias" for i in range(2) for j in range(2)}


def projection(name: str, batch: int, size: int, nc: int, dtype: str) -> np.ndarray:
    """The fixed random weights of the loss, in torch's output layout."""
    shape = (batch,) if name == "discriminator" else (batch, nc, size, size)
    return np.random.default_rng(123).standard_normal(shape).astype(dtype)


def torch_gradients(module, inputs, weights) -> dict[str, np.ndarray]:
    module.train(True)
    tensors = [torch.from_numpy(x.copy()).requires_grad_(i == 0) for i, x in enumerate(inputs)]
    is_discriminator = hasattr(module, "main") and isinstance(module.main[-1], torch.nn.Sigmoid)
    forward = module.main[:-1] if is_discriminator else module  # D's logits, as jaxgan's D returns
    out = forward(*tensors).reshape(weights.shape)
    loss = (out * torch.from_numpy(weights)).sum() / len(weights)
    module.zero_grad()
    loss.backward()
    grads = {k: p.grad.numpy().copy() for k, p in module.named_parameters()}
    grads["input"] = tensors[0].grad.numpy().copy()
    return grads


def jax_gradients(name, state_dict, inputs, weights, dtype) -> dict[str, np.ndarray]:
    arch = convert.infer_arch(role(name), state_dict)
    variables = convert.torch_to_flax(arch, state_dict)
    batch_stats = variables.get("batch_stats", {})
    model = convert.build_model(arch, np.dtype(dtype))
    args = [to_jax_input(x) for x in inputs]
    target = weights if name == "discriminator" else weights.transpose(0, 2, 3, 1)

    def loss_fn(params, first):
        out, _ = model.apply(
            {"params": params, "batch_stats": batch_stats},
            first,
            *args[1:],
            train=True,
            mutable=["batch_stats"],
        )
        return jnp.sum(out * target) / len(target)

    param_grads, input_grad = jax.grad(loss_fn, argnums=(0, 1))(variables["params"], args[0])
    torch_layout = convert.flax_to_torch(arch, {"params": param_grads, "batch_stats": batch_stats})
    param_keys = {e.torch_key for e in convert.table(arch) if e.flax_path[0] == "params"}
    grads = {k: v for k, v in torch_layout.items() if k in param_keys}
    grads["input"] = (
        np.asarray(input_grad).reshape(inputs[0].shape)
        if name == "generator"
        else np.asarray(input_grad).transpose(0, 3, 1, 2)
    )
    return grads


def gradients(name, skips, dtype, seed):
    with precision(dtype):
        module = make_torch_model(name, skips=skips, seed=seed, dtype=dtype)
        inputs = make_inputs(name, 4, seed=seed + 10, dtype=dtype)
        weights = projection(name, 4, 32, 3, dtype)
        state_dict = state_dict_numpy(module)
        return jax_gradients(name, state_dict, inputs, weights, dtype), torch_gradients(
            module, inputs, weights
        )


@pytest.mark.parametrize(
    "name,skips", MODELS, ids=[m[0] + ("+skips" if m[1] else "") for m in MODELS]
)
def test_gradients_float64(name, skips):
    got, expected = gradients(name, skips, "float64", seed=0)
    assert set(got) == set(expected)
    largest = max(np.abs(want).max() for want in expected.values())
    for key, want in expected.items():
        scale = np.abs(want).max()
        if key in zero_gradients(name):  # exactly 0 in exact arithmetic: rounding noise both sides
            assert max(scale, np.abs(got[key]).max()) <= 1e-12 * largest, key
            continue
        assert scale > 0, key
        assert np.abs(got[key] - want).max() <= 1e-9 * scale, key


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "name,skips", MODELS, ids=[m[0] + ("+skips" if m[1] else "") for m in MODELS]
)
def test_gradients_float32_as_close_to_float64_as_pytorch(name, skips, seed):
    reference, _ = gradients(
        name, skips, "float64", seed
    )  # jaxgan float64 == torch float64 (test above)
    jax32, torch32 = gradients(name, skips, "float32", seed)

    def error(grads, key):
        return np.linalg.norm(grads[key] - reference[key]) / np.linalg.norm(reference[key])

    largest = max(np.abs(grad).max() for grad in reference.values())
    for key in reference:
        if key in zero_gradients(name):
            assert np.abs(jax32[key]).max() <= 1e-5 * largest, key
            continue
        assert error(jax32, key) <= 10 * max(error(torch32, key), 1e-6), key
