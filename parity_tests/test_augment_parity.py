"""DiffAugment in jaxgan (NHWC) and torch_ref (NCHW) on the same host draws: same pixels, same
gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgan.tasks.gan.augment import USES, diff_augment, draws, parse_policy
from torch_ref.augment import diff_augment as torch_diff_augment


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
@pytest.mark.parametrize("nc", [1, 3])
def test_forward_and_gradient_match_in_float64(policy, nc):
    operations = parse_policy(policy)
    x = np.random.default_rng(nc).uniform(-1, 1, (6, 32, 32, nc))
    weights = np.random.default_rng(7).normal(
        size=x.shape
    )  # a loss that weighs every output pixel differently
    drawn = draws(5, 11, 6, 32)
    with jax.enable_x64(True):
        for use in range(USES):
            draw = drawn[:, use]

            def loss(images, draw=draw):
                return jnp.sum(diff_augment(images, jnp.asarray(draw), operations) * weights)

            value, grad = jax.value_and_grad(loss)(jnp.asarray(x))
            images = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
            out = torch_diff_augment(images, torch.from_numpy(draw), operations)
            torch_value = (out * torch.from_numpy(weights.transpose(0, 3, 1, 2))).sum()
            torch_value.backward()
            jax_out = np.asarray(diff_augment(jnp.asarray(x), jnp.asarray(draw), operations))
            np.testing.assert_allclose(
                jax_out, out.detach().numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-14
            )
            assert abs(float(value) - float(torch_value)) <= 1e-12 * abs(float(torch_value))
            np.testing.assert_allclose(
                np.asarray(grad), images.grad.numpy().transpose(0, 2, 3, 1), rtol=0, atol=1e-13
            )
