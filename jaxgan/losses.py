"""Losses: the adversarial losses by name (one table the GAN and restoration steps read) and masked
reconstruction.

An adversarial loss is a pair of functions of D's logits: `discriminator(real, fake)` -> (loss,
parts) and `generator(fake)` -> loss. Adding one is an entry in `ADVERSARIAL` (and its twin in
`torch_ref/losses.py`); `--config.loss=NAME` selects it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class AdversarialLoss(NamedTuple):
    discriminator: Callable[[jax.Array, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]
    generator: Callable[[jax.Array], jax.Array]


def bce_with_logits(logits: jax.Array, target: float) -> jax.Array:
    """Mean of BCELoss(sigmoid(logits), target) for a constant target 0 or 1, without overflow.

    Exact at every logit z: softplus(-z) (target 1) or softplus(z) (target 0), gradient
    sigmoid(z) - target. The seed (torch_ref/train.py: D ends in Sigmoid, then nn.BCELoss) rounds
    p = sigmoid(z) to the dtype, takes -max(log p, -100) or -max(log1p(-p), -100), and
    back-propagates (p - target) / max(p (1 - p), 1e-12) times the Sigmoid's p (1 - p). The two
    agree to rounding (a few eps) while |z| <= 27 and p rounds to neither 0 nor 1, except that the
    seed's target-0 value at z > 0 inherits the rounding of 1 - p, an error up to eps e^z (float32:
    1e-4 relative at z = 9.8, 1% at 14.7; float64: 1e-6 at 26.4). Elsewhere they differ,
    deliberately (parity_tests/test_saturated_loss.py checks each case):
    - |z| > 27.63 (p (1 - p) < 1e-12), either dtype: the seed's gradient is
      1e12 (p - target) p (1 - p), not p - target. On the losing side (target 1, z < -27.63: G's
      loss on fakes that D rejects, or D's on reals it calls fake; target 0, z > 27.63) it decays
      like 1e12 e^-|z| where jaxgan's stays -1 or 1: a saturated D gives the seed's G (or D) no
      gradient and jaxgan's a full one, so trajectories part there.
    - p rounded to exactly 1 (float32 z >= 16.64, float64 z >= 36.74) or 0 (float32 z <= -88.72):
      the seed's value is 100 on the losing side (jaxgan's: about |z|) and 0 on the other
      (about e^-|z|), its gradient 0.
    - float64, target 1, z < -100: the seed's value is clamped at 100; jaxgan's is about |z|.
    Matching these would mean copying torch's rounding of sigmoid (not portable across frameworks)
    and a vanishing gradient; the true loss and gradient are why the loss is taken on logits.
    """
    return jnp.mean(jax.nn.softplus(-logits) if target == 1 else jax.nn.softplus(logits))


def bce_discriminator(real: jax.Array, fake: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The seed's D loss: BCE of real logits with label 1 plus fake logits with label 0."""
    return parts(bce_with_logits(real, 1), bce_with_logits(fake, 0))


def bce_generator(fake: jax.Array) -> jax.Array:
    """The seed's (non-saturating) G loss: BCE of D's logits on fakes with label 1."""
    return bce_with_logits(fake, 1)


def parts(real: jax.Array, fake: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """D's loss as the sum of its real and fake terms, both logged."""
    return real + fake, {"d_loss_real": real, "d_loss_fake": fake}


def hinge_discriminator(real: jax.Array, fake: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): mean relu(1 - D(x)) + mean
    relu(1 + D(G(z))); G's loss is -mean D(G(z))."""
    return parts(jnp.mean(jax.nn.relu(1 - real)), jnp.mean(jax.nn.relu(1 + fake)))


def least_squares_discriminator(
    real: jax.Array, fake: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Least squares (Mao et al. 2017, labels 0 and 1): mean (D(x) - 1)^2 / 2 + mean D(G(z))^2 / 2;
    G's loss is mean (D(G(z)) - 1)^2 / 2."""
    return parts(jnp.mean(jnp.square(real - 1)) / 2, jnp.mean(jnp.square(fake)) / 2)


def wasserstein_discriminator(
    real: jax.Array, fake: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Wasserstein critic (Arjovsky et al. 2017): mean D(G(z)) - mean D(x); pair it with a gradient
    or R1 penalty to keep the critic Lipschitz."""
    return parts(-jnp.mean(real), jnp.mean(fake))


ADVERSARIAL = {
    "bce": AdversarialLoss(bce_discriminator, bce_generator),
    "hinge": AdversarialLoss(hinge_discriminator, lambda fake: -jnp.mean(fake)),
    "least_squares": AdversarialLoss(
        least_squares_discriminator, lambda fake: jnp.mean(jnp.square(fake - 1)) / 2
    ),
    "wasserstein": AdversarialLoss(wasserstein_discriminator, lambda fake: -jnp.mean(fake)),
}


def reconstruction(
    restored: jax.Array, original: jax.Array, weight: jax.Array, kind: str
) -> jax.Array:
    """Mean L1 or L2 error over the pixels that `weight` (N, H, W, 1) selects (all ones: the whole
    image)."""
    error = jnp.abs(restored - original) if kind == "l1" else jnp.square(restored - original)
    total = jnp.sum(error * weight)
    count = jnp.maximum(jnp.sum(weight) * original.shape[-1], 1)
    return total / count
