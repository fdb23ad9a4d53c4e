"""The documented held-out images of restoration: fixed crops, from a fixed seed, of data never
trained on.

For the built-in `photos` these are native-resolution S x S crops (no resizing, no flips) of the
test split (scikit-image's coffee, chelsea and rocket), taken in turn from each photo; training sees
only the train split. For `digits`, the test split's digits; for a folder, crops of its images (a
folder has no held-out split: give one that training did not use).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.config import Config
from jaxgan.data import images, sources
from jaxgan.data.images import to_model_range
from jaxgan.data.order import generator
from jaxgan.state import param_dtype
from jaxgan.tasks.restore.degradations import Degradation, jpeg_compress

STREAM_HELD_OUT = (
    16  # Philox stream of the held-out crop positions (data/order.py's streams are 1-4)
)
SAMPLE_KEY = 1  # the fixed key (folded into the seed) of the held-out degradations
# Held-out crops and their degradations during training use this seed, not the run's: every run of
# a seed sweep is scored on the same crops (seed 0 is what earlier runs of seed 0 used).
HELD_OUT_SEED = 0


def held_out_crops(data: str, image_size: int, nc: int, num: int, seed: int = 0) -> np.ndarray:
    """`num` fixed uint8 crops (num, S, S, nc) of the held-out split of `data` ("" means photos)."""
    if num < 1:
        raise ValueError(f"the number of held-out crops must be at least 1, got {num}")
    data = data or "photos"
    if data == "digits":
        digits = sources.Digits(image_size, nc, "test").images
        return digits[np.arange(num) % len(digits)]
    if data == "photos":
        pictures = [sources.photo(name) for name in sources.PHOTOS_TEST]
        names = sources.PHOTOS_TEST
    elif data == "fake":
        return sources.Fake(image_size, nc, size=num).pool[np.arange(num) % 64]
    else:
        names = [str(path) for path in images.list_images(data)]
        pictures = [images.read_image(path) for path in names]
    crops = []
    for i in range(num):
        picture, name = pictures[i % len(pictures)], names[i % len(pictures)]
        if min(picture.shape[:2]) < image_size:
            raise ValueError(
                f"{name}: {picture.shape[1]}x{picture.shape[0]} is smaller than the {image_size}x"
                f"{image_size} crops of the held-out set"
            )
        rng = generator(seed, STREAM_HELD_OUT, i)
        crops.append(sources.random_crop(picture, image_size, nc, rng, max_scale=1.0, flip=False))
    return np.stack(crops)


def held_out_batch(config: Config, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, damaged, mask) float arrays in [-1, 1] of `num` fixed held-out crops, degraded with a
    fixed key: the same for every run seed."""
    crops = held_out_crops(config.data, config.image_size, config.nc, num, HELD_OUT_SEED)
    degradation = Degradation.from_config(config)
    dtype = param_dtype(config)
    host = jnp.asarray(jpeg_compress(crops, config.jpeg_quality)) if degradation.on_host else None
    clean = to_model_range(jnp.asarray(crops), dtype)
    key = jax.random.fold_in(jax.random.key(HELD_OUT_SEED), SAMPLE_KEY)
    damaged, mask = jax.jit(degradation.apply)(
        key, clean, None if host is None else to_model_range(host, dtype)
    )
    return np.asarray(clean), np.asarray(damaged), np.asarray(mask)
