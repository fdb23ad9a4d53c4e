"""The documented held-out images of restoration: fixed crops, from a fixed seed, of data never
trained on, in two splits: validation (every choice is made on it; training's evaluations use it)
and test (scored only for the tables).

For the built-in `photos` these are native-resolution S x S crops (no resizing, no flips), taken in
turn from each photo: of the test photographs (scikit-image's coffee, chelsea and rocket) for
test, of the right-most fifth of each training photograph (never cropped in training) for
validation. For `digits`, the test split's digits for both (the digits have no validation split);
for a folder, crops of its images (a folder has no held-out split: give one training did not use).
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
MIN_CROP_STD, MAX_DRAWS = 2.0, 100  # a held-out crop's least pixel standard deviation (0..255)


HELD_OUT_SPLITS = ("validation", "test")


def held_out_crops(
    data: str, image_size: int, nc: int, num: int, seed: int = 0, split: str = "test"
) -> np.ndarray:
    """`num` fixed uint8 crops (num, S, S, nc) of a held-out split ("validation" or "test") of
    `data` ("" means photos)."""
    if split not in HELD_OUT_SPLITS:
        raise ValueError(f"held-out split must be one of {HELD_OUT_SPLITS}, got {split!r}")
    if num < 1:
        raise ValueError(f"the number of held-out crops must be at least 1, got {num}")
    data = data or "photos"
    if data == "digits":
        digits = sources.Digits(image_size, nc, "test").images
        return digits[np.arange(num) % len(digits)]
    if data == "photos":
        names = sources.photo_names(split, nc)
        pictures = [sources.photo_region(name, split) for name in names]
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
        for _ in range(MAX_DRAWS):  # flat crops (a black sky) score infinite PSNR: drawn again
            crop = sources.random_crop(picture, image_size, nc, rng, max_scale=1.0, flip=False)
            if crop.std() >= MIN_CROP_STD:
                break
        crops.append(crop)
    return np.stack(crops)


def held_out_batch(
    config: Config, num: int, split: str = "validation"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean, damaged, mask) float arrays in [-1, 1] of `num` fixed held-out crops of `split`,
    degraded with a fixed key: the same for every run seed."""
    crops = held_out_crops(config.data, config.image_size, config.nc, num, HELD_OUT_SEED, split)
    degradation = Degradation.from_config(config)
    dtype = param_dtype(config)
    host = jnp.asarray(jpeg_compress(crops, config.jpeg_quality)) if degradation.on_host else None
    clean = to_model_range(jnp.asarray(crops), dtype)
    key = jax.random.fold_in(jax.random.key(HELD_OUT_SEED), SAMPLE_KEY)
    damaged, mask = jax.jit(degradation.apply)(
        key, clean, None if host is None else to_model_range(host, dtype)
    )
    return np.asarray(clean), np.asarray(damaged), np.asarray(mask)
