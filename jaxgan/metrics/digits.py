"""A download-free quality score for the built-in digits: a small classifier and its metrics.

The classifier (trained by scripts/train_digits_classifier.py on the digits' training split, shipped
as digits_classifier.safetensors) sees any digit image as 16x16 grayscale. Its 64 penultimate
activations (before the ReLU) are the features for digits-FID and digits-KID; its 10 class
probabilities give digits-IS (at most 10) and mode coverage: how many digits the generator draws
at least 5% of the time.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxgan.data.images import to_model_range
from jaxgan.models.layers import DEFAULT_PRECISION, lax_precision

INPUT_SIZE = 16
FEATURES = 64
CLASSES = 10
MODE_THRESHOLD = 0.05
WEIGHTS_PATH = Path(__file__).parent / "digits_classifier.safetensors"


class DigitsNet(nn.Module):
    """(N, 16, 16, 1) in [-1, 1] -> (features (N, 64), logits (N, 10)); convolutions and products at
    `precision`."""

    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        precision = lax_precision(self.precision)
        x = nn.relu(nn.Conv(32, (3, 3), precision=precision, name="conv_0")(x))  # (N, 16, 16, 32)
        x = nn.max_pool(x, (2, 2), (2, 2))  # (N, 8, 8, 32)
        x = nn.relu(nn.Conv(64, (3, 3), precision=precision, name="conv_1")(x))  # (N, 8, 8, 64)
        x = nn.max_pool(x, (2, 2), (2, 2))  # (N, 4, 4, 64)
        features = nn.Dense(FEATURES, precision=precision, name="dense_0")(
            x.reshape(x.shape[0], -1)
        )  # (N, 64)
        return features, nn.Dense(CLASSES, precision=precision, name="dense_1")(
            nn.relu(features)
        )  # (N, 10)


def to_input(images: jax.Array) -> jax.Array:
    """NHWC digits (uint8, or float in [-1, 1]; any channels and size) -> (N, 16, 16, 1) float32 in
    [-1, 1].

    Channels are averaged; the size changes by antialiased linear resampling.
    """
    gray = to_model_range(images, jnp.float32).mean(axis=-1, keepdims=True)
    if gray.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        gray = jax.image.resize(
            gray, (gray.shape[0], INPUT_SIZE, INPUT_SIZE, 1), "linear", antialias=True
        )
    return gray


def classify(
    variables: Any, images: jax.Array, precision: str = DEFAULT_PRECISION
) -> tuple[jax.Array, jax.Array]:
    """Pure (traceable) features and logits of NHWC digit images; compose it under `jit`."""
    return DigitsNet(precision).apply(variables, to_input(images))


@functools.lru_cache(maxsize=4)
def load_variables(path: str | os.PathLike = WEIGHTS_PATH) -> dict:
    """The classifier's Flax variables from its safetensors file (keys like `conv_0.kernel`)."""
    from jaxgan.torch_files import read_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"digits classifier weights {path} are missing; they ship with jaxgan "
            "(reinstall it, or rebuild them: python scripts/train_digits_classifier.py)"
        )
    flat = {("params", *key.split(".")): value for key, value in read_file(path).items()}
    return traverse_util.unflatten_dict(flat)


def flat_weights(variables: Any) -> dict[str, np.ndarray]:
    """The inverse of `load_variables`: {"conv_0.kernel": array, ...} for the safetensors file."""
    flat = traverse_util.flatten_dict(variables["params"])
    return {".".join(path): np.asarray(value) for path, value in flat.items()}


class DigitsClassifier:
    """`DigitsClassifier()(images)` -> (N, 64) features; `features_and_logits` adds the (N, 10)
    logits."""

    def __init__(
        self,
        weights_path: str | os.PathLike = WEIGHTS_PATH,
        batch_size: int = 500,
        precision: str = DEFAULT_PRECISION,
    ):
        lax_precision(precision)  # an unknown name fails here, not at the first batch
        self.variables = load_variables(Path(weights_path))
        self.batch_size = batch_size
        self.precision = precision

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.features_and_logits(images)[0]

    def features_and_logits(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from jaxgan.metrics.batches import in_fixed_batches

        return in_fixed_batches(
            lambda chunk: compiled_classify(self.variables, chunk, self.precision),
            images,
            self.batch_size,
        )


compiled_classify = jax.jit(
    classify, static_argnames="precision"
)  # one compiled function per shape for every user


def class_histogram(logits: np.ndarray) -> np.ndarray:
    """How often each digit is the most likely class: (10,) frequencies summing to 1."""
    counts = np.bincount(np.argmax(logits, axis=1), minlength=CLASSES)
    return counts / max(len(logits), 1)


def modes_covered(histogram: np.ndarray, threshold: float = MODE_THRESHOLD) -> int:
    """Digits drawn at least `threshold` of the time (10 = no mode collapse)."""
    return int(np.sum(np.asarray(histogram) >= threshold))


@functools.lru_cache(maxsize=8)
def real_features(image_size: int, nc: int, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Features and logits of the built-in digits split (jaxgan.data.sources: the last 297 held
    out)."""
    from jaxgan.data.sources import DIGITS_TEST, digits_images, split_range

    images = digits_images(image_size, nc)
    indices = split_range(len(images), DIGITS_TEST, split)
    return DigitsClassifier().features_and_logits(images[indices.start : indices.stop])


def digits_metrics(
    features: np.ndarray,
    logits: np.ndarray,
    reference: np.ndarray,
    seed: int = 0,
    names: tuple[str, ...] = ("digits-fid", "digits-kid", "digits-is", "modes", "digits-prdc"),
) -> dict[str, Any]:
    """digits-FID/KID against `reference` features, digits-IS and mode coverage of generated
    images; "digits-prdc": precision and recall (k = 3), density and coverage (k = 5) on the
    classifier's features."""
    from jaxgan.metrics.fid import frechet_distance, statistics_of
    from jaxgan.metrics.inception_score import inception_score
    from jaxgan.metrics.kid import kernel_inception_distance

    results: dict[str, Any] = {}
    if "digits-fid" in names:
        results["digits-fid"] = frechet_distance(
            *statistics_of(features), *statistics_of(reference)
        )
    if "digits-kid" in names:
        results["digits-kid"], results["digits-kid-std"] = kernel_inception_distance(
            features, reference, seed=seed
        )
    if "digits-is" in names:
        results["digits-is"], results["digits-is-std"] = inception_score(logits)
    if "modes" in names:
        histogram = class_histogram(logits)
        results["modes"] = modes_covered(histogram)
        results["digit-frequencies"] = [round(float(f), 4) for f in histogram]
    if "digits-prdc" in names:
        from jaxgan.metrics.prdc import with_papers_k

        found = with_papers_k(reference, features)
        results.update({f"digits-{name}": value for name, value in found.items()})
    return results
