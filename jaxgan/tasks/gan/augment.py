"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout of D's inputs.

D sees every real and fake image augmented, in its own step and in G's, so it cannot win by
memorising a small data set, and G's gradient flows through the augmentation. The random draws
are made on the host, keyed by (seed, step) as the latents are (`jaxgan.data.order`), and travel in
the batch, so they are the same on any device count and `torch_ref/augment.py` applies the same.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.config import Config
from jaxgan.data.order import STREAM_AUGMENT, generator

OPERATIONS = ("color", "translation", "cutout")  # applied in this order, as DiffAugment does
USES = 3  # independent draws per example: D's real batch, D's fake batch, G's fake batch
# Columns of one draw: colour factors in [0, 1), then integer shifts and cutout centres
# (rows, columns).
BRIGHTNESS, SATURATION, CONTRAST, SHIFT_ROWS, SHIFT_COLS, CUTOUT_ROW, CUTOUT_COL = range(7)
NUM_DRAWS = 7
TRANSLATION_RATIO = 0.125  # shifts of up to 1/8 of the image, zero-padded
CUTOUT_RATIO = 0.5  # one zeroed square of half the image side


def parse_policy(policy: str) -> tuple[str, ...]:
    """ "color,translation,cutout" -> its operations in DiffAugment's order; "" -> none."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in OPERATIONS]
    if unknown:
        raise ValueError(
            f"unknown augmentation {unknown[0]!r}; valid: {', '.join(OPERATIONS)} "
            "(comma-separated, e.g. 'color,translation,cutout')"
        )
    return tuple(name for name in OPERATIONS if name in names)


def augment_size(config: Config) -> int:
    """The image side the run's augmentation draws are made for; 0 when it has no augmentation."""
    return config.image_size if config.augment else 0


def shift_limit(image_size: int) -> int:
    return int(image_size * TRANSLATION_RATIO + 0.5)


def cutout_size(image_size: int) -> int:
    return int(image_size * CUTOUT_RATIO + 0.5)


def draws(
    seed: int, step: int, batch_size: int, image_size: int, rows: slice = slice(None)
) -> np.ndarray:
    """The global batch's augmentation draws for `step`, (B, USES, NUM_DRAWS) float64, then
    `rows`."""
    rng = generator(seed, STREAM_AUGMENT, step)
    colour = rng.random((batch_size, USES, 3))
    limit, cut = shift_limit(image_size), cutout_size(image_size)
    shifts = rng.integers(-limit, limit + 1, (batch_size, USES, 2))
    centres = rng.integers(0, image_size + (1 - cut % 2), (batch_size, USES, 2))
    return np.concatenate([colour, shifts, centres], axis=-1)[rows]


def diff_augment(images: jax.Array, draw: jax.Array, operations: tuple[str, ...]) -> jax.Array:
    """Augment NHWC `images` with one draw per image (`draw`: (N, NUM_DRAWS)); differentiable in
    images."""
    if not operations:
        return images
    draw = draw.astype(images.dtype)

    def factor(column: int) -> jax.Array:
        return draw[:, column, None, None, None]  # (N, 1, 1, 1)

    x = images  # (N, S, S, nc)
    if "color" in operations:
        x = x + (factor(BRIGHTNESS) - 0.5)
        mean = jnp.mean(x, axis=-1, keepdims=True)
        x = (x - mean) * (factor(SATURATION) * 2) + mean
        mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
        x = (x - mean) * (factor(CONTRAST) + 0.5) + mean
    size = x.shape[1]
    if "translation" in operations:
        x = _shift(x, draw[:, SHIFT_ROWS].astype(jnp.int32), axis=1)
        x = _shift(x, draw[:, SHIFT_COLS].astype(jnp.int32), axis=2)
    if "cutout" in operations:
        cut, index = cutout_size(size), jnp.arange(size)

        def inside(column: int) -> jax.Array:  # (N, S): pixels within the square along one axis
            start = draw[:, column, None].astype(jnp.int32) - cut // 2
            return (index >= start) & (index < start + cut)

        hole = inside(CUTOUT_ROW)[:, :, None] & inside(CUTOUT_COL)[:, None, :]  # (N, S, S)
        x = x * (~hole)[..., None].astype(x.dtype)
    return x


def _shift(x: jax.Array, shift: jax.Array, axis: int) -> jax.Array:
    """out[n, i] = x[n, i + shift[n]] along `axis` (1 or 2), zero where that falls outside the
    image."""
    source = jnp.arange(x.shape[axis])[None, :] + shift[:, None]  # (N, S)
    valid = (source >= 0) & (source < x.shape[axis])
    shape = [x.shape[0], 1, 1, 1]
    shape[axis] = x.shape[axis]
    source, valid = source.reshape(shape), valid.reshape(shape)
    taken = jnp.take_along_axis(x, jnp.clip(source, 0, x.shape[axis] - 1), axis=axis)
    return jnp.where(valid, taken, jnp.zeros((), x.dtype))
