"""Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel, averaged over
subsets.

k(x, y) = (x . y / d + 1)^3 (Binkowski et al., 2018). Unlike FID it is unbiased, so it can compare
small sets. Random subsets of equal size (without replacement) are drawn from each set; the mean
and standard deviation over subsets are reported, as torch-fidelity and clean-fid do.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimate between two equal-size sets: within-set means skip the
    diagonal."""
    m = len(x)
    within_x, within_y, between = (
        polynomial_kernel(x, x),
        polynomial_kernel(y, y),
        polynomial_kernel(x, y),
    )
    within = (within_x.sum() - np.trace(within_x) + within_y.sum() - np.trace(within_y)) / (
        m * (m - 1)
    )
    return float(within - 2 * between.sum() / (m * m))


def kernel_inception_distance(
    features1: np.ndarray,
    features2: np.ndarray,
    subsets: int = DEFAULT_SUBSETS,
    subset_size: int = DEFAULT_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, std) of the unbiased MMD^2 over `subsets` random subsets of min(subset_size, N1, N2)
    each."""
    features1, features2 = np.asarray(features1, np.float64), np.asarray(features2, np.float64)
    if features1.ndim != 2 or features1.shape[1:] != features2.shape[1:]:
        raise ValueError(
            f"KID needs two (N, D) feature sets of the same D, got {features1.shape} and "
            f"{features2.shape}"
        )
    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ValueError(
            f"KID needs at least 2 images in each set, got {len(features1)} and {len(features2)}"
        )
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(
            features1[rng.choice(len(features1), size, replace=False)],
            features2[rng.choice(len(features2), size, replace=False)],
        )
        for _ in range(subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
