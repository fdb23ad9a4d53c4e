"""Feature networks over any number of images, in batches of one compiled shape."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


def in_fixed_batches(
    network: Callable[[jax.Array], tuple[jax.Array, ...]],
    images: np.ndarray | jax.Array,
    batch_size: int,
) -> tuple[np.ndarray, ...]:
    """`network`'s outputs for every image, concatenated: the last batch is padded with zeros to the
    compiled shape (every image is independent) and the padding's outputs dropped. No images give
    empty outputs of the right widths."""
    if len(images) == 0:  # the output shapes, traced without computing anything
        padded = jax.ShapeDtypeStruct((batch_size, *images.shape[1:]), images.dtype)
        return tuple(
            np.zeros((0, *output.shape[1:]), output.dtype)
            for output in jax.eval_shape(network, padded)
        )
    outputs = []
    for start in range(0, len(images), batch_size):
        chunk = jnp.asarray(images[start : start + batch_size])
        count = len(chunk)
        if count < batch_size:
            chunk = jnp.concatenate(
                [chunk, jnp.zeros((batch_size - count, *chunk.shape[1:]), chunk.dtype)]
            )
        outputs.append([np.asarray(output[:count]) for output in network(chunk)])
    return tuple(np.concatenate(parts) for parts in zip(*outputs, strict=True))
