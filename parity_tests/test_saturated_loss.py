"""jaxgan's BCE on logits against the seed's Sigmoid + nn.BCELoss (torch_ref/train.py), at logits up
to +-200.

Per logit z, target 0 and 1, float32 and float64: value and gradient with respect to z. jaxgan's are
the exact BCE everywhere; the reference agrees with them where unsaturated and, where saturated,
does exactly what `jaxgan.losses.bce_with_logits` documents (a vanishing gradient past
p (1 - p) < 1e-12, a value clamped at 100, zeros where sigmoid rounds to 0 or 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch import nn

from jaxgan.losses import bce_with_logits
from parity_tests.helpers import TORCH_DTYPES

LOGITS = (
    -200,
    -120,
    -101,
    -99,
    -89,
    -88,
    -50,
    -30,
    -27,
    -20,
    -10,
    -3,
    0,
    3,
    10,
    15,
    17,
    20,
    27,
    30,
    37,
    50,
    99,
    101,
    120,
    200,
)
EPS = float(
    np.float32(1e-12)
)  # nn.BCELoss's floor on p (1 - p) in its gradient (a float32 constant, also in float64)
CLAMP = 100.0  # and its floor on -log


def reference(target: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The seed's loss per logit: (value, d value / d z, sigmoid(z) as it rounds), each as torch
    computes it."""
    values, grads, probs = [], [], []
    for z in LOGITS:
        logit = torch.tensor([float(z)], dtype=TORCH_DTYPES[dtype], requires_grad=True)
        output = torch.sigmoid(logit)  # the Discriminator's last module
        loss = nn.BCELoss()(output, torch.full_like(output, float(target)))
        loss.backward()
        values.append(loss.item())
        grads.append(logit.grad.item())
        probs.append(output.item())
    return (np.array(values, dtype), np.array(grads, dtype), np.array(probs, dtype))


def jaxgan(target: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """jaxgan's loss per logit (a batch of one) and its gradient."""
    per_logit = jax.vmap(jax.value_and_grad(lambda z: bce_with_logits(z[None], target)))
    value, grad = per_logit(jnp.asarray(LOGITS, dtype))
    return np.asarray(value), np.asarray(grad)


def exact(target: int) -> tuple[np.ndarray, np.ndarray]:
    """BCE on logits in float64: softplus(-+z) and sigmoid(z) - target (1 - sigmoid as
    sigmoid(-z))."""
    z = np.array(LOGITS, np.float64)
    value = np.logaddexp(0, -z) if target == 1 else np.logaddexp(0, z)
    sigmoid = 1 / (1 + np.exp(-z))
    return value, (-1 / (1 + np.exp(z)) if target == 1 else sigmoid)


def losing(target: int) -> np.ndarray:
    """The logits that the target calls wrong (the side where the loss grows like |z|)."""
    z = np.array(LOGITS)
    return z < 0 if target == 1 else z > 0


def value_tolerance(target: int, dtype: str, want: np.ndarray) -> np.ndarray:
    """Rounding of the reference's value: a few eps of max(1, |value|), plus, for target 0 and
    z > 0, the rounding of 1 - p that log1p(-p) inherits (relative error of 1 - p up to
    eps / 2 e^z)."""
    eps, z = np.finfo(dtype).eps, np.array(LOGITS, np.float64)
    return 4 * eps * np.maximum(1, np.abs(want)) + (
        eps * np.exp(np.minimum(z, 700)) if target == 0 else 0
    ) * (z > 0)


@pytest.mark.parametrize("target", [0, 1])
def test_jaxgan_is_the_exact_bce_at_every_logit(dtype, target):
    value, grad = jaxgan(target, dtype)
    want_value, want_grad = exact(target)
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    assert value.dtype == grad.dtype == np.dtype(dtype)
    assert np.isfinite(value).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(value, want_value, rtol=16 * eps, atol=tiny)
    np.testing.assert_allclose(grad, want_grad, rtol=16 * eps, atol=tiny)
    assert (
        np.abs(grad[losing(target)]) > 0.95
    ).all()  # a losing logit always pulls back, however far out


@pytest.mark.parametrize("target", [0, 1])
def test_the_reference_agrees_where_unsaturated(dtype, target):
    """|z| <= 27 (p (1 - p) >= 1e-12) and sigmoid not rounded to 0 or 1: value and gradient agree to
    rounding."""
    ref_value, ref_grad, p = reference(target, dtype)
    value, grad = jaxgan(target, dtype)
    unsaturated = (np.abs(LOGITS) <= 27) & (p > 0) & (p < 1)
    assert (
        unsaturated.sum() == {"float32": 8, "float64": 11}[dtype]
    )  # float32 rounds sigmoid(17) to 1
    eps = np.finfo(dtype).eps
    tolerance = value_tolerance(target, dtype, value.astype(np.float64))
    assert (np.abs(ref_value - value.astype(np.float64)) <= tolerance)[unsaturated].all()
    np.testing.assert_allclose(ref_grad[unsaturated], grad[unsaturated], rtol=0, atol=16 * eps)


@pytest.mark.parametrize("target", [0, 1])
def test_the_reference_saturates_as_documented(dtype, target):
    """Everywhere else the reference does what bce_with_logits' docstring says, and jaxgan does
    not."""
    ref_value, ref_grad, p = reference(target, dtype)
    value, grad = jaxgan(target, dtype)
    z, lose = np.array(LOGITS), losing(target)
    rounded = (p == 0) | (p == 1)
    floored = ~rounded & (p.astype(np.float64) * (1 - p.astype(np.float64)) < EPS)
    assert ((np.abs(z) > 27) | rounded).tolist() == (
        rounded | floored
    ).tolist()  # the two cases cover the rest
    assert rounded.tolist() == ((z >= 17) | (z <= -89) if dtype == "float32" else z >= 37).tolist()

    # sigmoid rounded to 0 or 1: 100 on the losing side, 0 on the other, gradient exactly 0.
    np.testing.assert_array_equal(ref_value[rounded], np.where(lose, CLAMP, 0.0)[rounded])
    np.testing.assert_array_equal(ref_grad[rounded], 0.0)
    np.testing.assert_allclose(np.abs(grad[rounded & lose]), 1, rtol=1e-6)  # jaxgan's: 1 - e^-|z|
    # p (1 - p) below BCELoss's floor: the gradient is 1e12 (p - target) p (1 - p), vanishing like
    # 1e12 e^-|z|.
    one, floor = np.asarray(1, dtype), np.asarray(EPS, dtype)
    floor_grad = (
        (p - np.asarray(target, dtype)) / floor * (one - p) * p
    )  # in the dtype, as torch computes it
    np.testing.assert_allclose(
        ref_grad[floored],
        floor_grad[floored],
        rtol=8 * np.finfo(dtype).eps,
        atol=np.finfo(dtype).tiny,
    )
    assert (
        np.abs(ref_grad[floored & lose]) <= (1 + 1e-6) * np.exp(-np.abs(z[floored & lose])) / EPS
    ).all()
    np.testing.assert_allclose(
        np.abs(grad[floored & lose]), 1, rtol=1e-11
    )  # jaxgan's: 1 - e^-|z|, in full
    # Unrounded values: the clamp at 100 on the losing side (float64 |z| > 100), rounding as where
    # unsaturated.
    want_value = exact(target)[0]
    clamped = np.minimum(want_value, CLAMP)
    tolerance = value_tolerance(target, dtype, clamped)
    assert (np.abs(ref_value - clamped) <= tolerance)[floored].all()
    beyond = floored & (want_value > CLAMP)
    assert beyond.sum() == (
        3 if (dtype, target) == ("float64", 1) else 0
    )  # elsewhere p rounds to 0 or 1 first
    np.testing.assert_array_equal(ref_value[beyond], CLAMP)
    np.testing.assert_allclose(
        value[beyond], np.abs(z[beyond]), rtol=1e-12
    )  # jaxgan's: the true |z|
