"""Losses: BCE on logits (the seed's Sigmoid + BCELoss, stable) and masked reconstruction."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def bce_with_logits(logits: jax.Array, target: float) -> jax.Array:
    """Mean of BCELoss(sigmoid(logits), target) for a constant target 0 or 1, without overflow."""
    return jnp.mean(jax.nn.softplus(-logits) if target == 1 else jax.nn.softplus(logits))


def reconstruction(restored: jax.Array, original: jax.Array, weight: jax.Array, kind: str) -> jax.Array:
    """Mean L1 or L2 error over the pixels that `weight` (N, H, W, 1) selects (all ones: the whole image)."""
    error = jnp.abs(restored - original) if kind == "l1" else jnp.square(restored - original)
    total = jnp.sum(error * weight)
    count = jnp.maximum(jnp.sum(weight) * original.shape[-1], 1)
    return total / count
