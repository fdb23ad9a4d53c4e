"""Shared helpers for JAX-vs-PyTorch parity tests: build a torch_ref model with random weights and
random running statistics, convert it, and run both on the same inputs (NCHW <-> NHWC here only)."""

from __future__ import annotations

import contextlib

import jax
import numpy as np
import torch

from jaxgan import convert
from torch_ref import models as torch_models

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
# Residual restorers under test: name -> (unshuffle, batchnorm); 2 blocks each.
RESIDUAL = {
    "residual": (2, False),
    "residual_bn": (2, True),
    "residual_u1": (1, False),
    "residual_u4": (4, False),
}


# Class-conditional models under test: name -> the converter's model; 10 classes each.
CONDITIONAL = {
    "conditional_generator": "generator",
    "conditional_batchnorm_generator": "generator",
    "conditional_both_generator": "generator",
    "projection_discriminator": "discriminator",
}
NUM_CLASSES = 10


def role(name: str) -> str:
    """The converter's model name (`--model`) of a model under test."""
    return "restorer" if name in RESIDUAL else CONDITIONAL.get(name, name)


def precision(dtype: str):
    """float64 runs inside JAX's 64-bit mode; float32 outside it."""
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def make_torch_model(
    name: str,
    size: int = 32,
    nc: int = 3,
    width: int = 8,
    skips: bool = False,
    nz: int = 16,
    seed: int = 0,
    dtype: str = "float32",
) -> torch.nn.Module:
    """A torch_ref model with DCGAN-initialised weights, then BatchNorm affine parameters and
    running statistics drawn away from their defaults, so that a wrong statistic or mode shows."""
    torch.manual_seed(seed)
    classes = NUM_CLASSES if name in CONDITIONAL else 0
    if role(name) == "generator":
        module = torch_models.Generator(
            nz,
            width,
            nc,
            size,
            num_classes=classes,
            class_conditioning={
                "conditional_batchnorm_generator": "batchnorm",
                "conditional_both_generator": "both",
            }.get(name, "embedding"),
        )
    elif role(name) == "discriminator":
        module = torch_models.Discriminator(width, nc, size, num_classes=classes)
    elif name in RESIDUAL:  # DCGAN's init below also gives the zero-initialised head weights
        unshuffle, batchnorm = RESIDUAL[name]
        module = torch_models.ResidualRestorer(nc, width, 2, unshuffle, batchnorm)
        torch.nn.init.uniform_(module.head.bias, -0.1, 0.1)
    else:
        module = torch_models.Restorer(nc=nc, width=width, image_size=size, skips=skips)
    module.apply(torch_models.weights_init)
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                if layer.affine:
                    layer.weight.uniform_(0.5, 1.5)
                    layer.bias.uniform_(-0.5, 0.5)
                layer.running_mean.uniform_(-0.5, 0.5)
                layer.running_var.uniform_(0.5, 1.5)
                layer.num_batches_tracked.fill_(7)
            if isinstance(layer, torch.nn.Embedding):  # D's N(0, 0.02) would hide a projection
                layer.weight.uniform_(-0.5, 0.5)
    return module.to(TORCH_DTYPES[dtype])


def make_inputs(
    name: str,
    batch: int,
    size: int = 32,
    nc: int = 3,
    nz: int = 16,
    seed: int = 1,
    dtype: str = "float32",
) -> list[np.ndarray]:
    """NCHW numpy inputs (latents as (N, nz, 1, 1)); the restorer also gets a 0/1 mask, a
    conditional model int64 labels (N,)."""
    rng = np.random.default_rng(seed)
    labels = [rng.integers(0, NUM_CLASSES, batch)] if name in CONDITIONAL else []
    if role(name) == "generator":
        return [rng.standard_normal((batch, nz, 1, 1)).astype(dtype), *labels]
    images = rng.uniform(-1, 1, (batch, nc, size, size)).astype(dtype)
    if role(name) == "discriminator":
        return [images, *labels]
    return [images, (rng.random((batch, 1, size, size)) < 0.3).astype(dtype)]


def to_jax_input(array: np.ndarray) -> np.ndarray:
    if array.ndim == 1:  # labels
        return array
    return (
        array.reshape(len(array), -1) if array.shape[2:] == (1, 1) else array.transpose(0, 2, 3, 1)
    )


def state_dict_numpy(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def torch_forward(module: torch.nn.Module, inputs: list[np.ndarray], train: bool) -> np.ndarray:
    """Output in jaxgan's layout: NHWC images, or the discriminator's (N,) probabilities."""
    module.train(train)
    with torch.no_grad():
        out = module(*[torch.from_numpy(x) for x in inputs]).numpy()
    return out.reshape(-1) if out.shape[1:] == (1, 1, 1) else out.transpose(0, 2, 3, 1)


def jax_forward(
    name: str,
    state_dict: dict[str, np.ndarray],
    inputs: list[np.ndarray],
    train: bool,
    dtype: str = "float32",
):
    """(output, new batch_stats or None) of the converted Flax model; D's logits pass through
    sigmoid."""
    arch = convert.infer_arch(role(name), state_dict)
    variables = convert.torch_to_flax(arch, state_dict)
    model = convert.build_model(arch, np.dtype(dtype))
    args = [to_jax_input(x) for x in inputs]
    if train:
        out, updates = model.apply(variables, *args, train=True, mutable=["batch_stats"])
    else:
        out, updates = model.apply(variables, *args, train=False), None
    out = np.asarray(out)
    if role(name) == "discriminator":
        out = 1 / (1 + np.exp(-out))
    return out, updates
