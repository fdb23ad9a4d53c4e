"""KID: the unbiased MMD^2 with the cubic polynomial kernel, in subsets, against a brute-force
reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxgan.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook unbiased estimator, pair by pair."""
    m, d = len(x), x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1) ** 3

    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (
        m * (m - 1)
    )
    return within - 2 * sum(k(a, b) for a in x for b in y) / m**2


def biased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """The V-statistic: within-set means include the diagonal k(x, x)."""
    return float(
        polynomial_kernel(x, x).mean()
        + polynomial_kernel(y, y).mean()
        - 2 * polynomial_kernel(x, y).mean()
    )


def test_mmd2_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 5)), rng.normal(size=(12, 5)) + 0.5
    assert mmd2_unbiased(x, y) == pytest.approx(brute_force_mmd2(x, y), rel=1e-12)


def test_estimator_is_unbiased_where_the_plain_one_is_not():
    """Over 400 independent pairs of 20-image sets from one distribution the mean is zero within
    three standard errors; including the kernel diagonal (the biased estimator) moves it far off."""
    rng = np.random.default_rng(1)
    pairs = [(rng.normal(size=(20, 8)), rng.normal(size=(20, 8))) for _ in range(400)]
    values = np.array([mmd2_unbiased(x, y) for x, y in pairs])
    assert abs(values.mean()) < 3 * values.std() / np.sqrt(len(values))
    biased = np.array([biased_mmd2(x, y) for x, y in pairs])
    assert biased.mean() > 10 * values.std() / np.sqrt(len(values))


def test_kid_grows_with_a_shift():
    rng = np.random.default_rng(2)
    same = kernel_inception_distance(
        rng.normal(size=(400, 16)), rng.normal(size=(300, 16)), subsets=20, subset_size=200
    )
    shifted = kernel_inception_distance(
        rng.normal(size=(400, 16)), rng.normal(size=(300, 16)) + 0.5, subsets=20, subset_size=200
    )
    assert shifted[0] > 10 * abs(same[0]) and shifted[0] > 5 * shifted[1]


def test_kid_subsets_mean_and_std_and_determinism():
    rng = np.random.default_rng(2)
    first, second = rng.normal(size=(30, 4)), rng.normal(size=(25, 4)) + 0.3
    mean, std = kernel_inception_distance(first, second, subsets=5, subset_size=100, seed=3)
    choose = np.random.default_rng(3)
    values = [
        mmd2_unbiased(
            first[choose.choice(30, 25, replace=False)],
            second[choose.choice(25, 25, replace=False)],
        )
        for _ in range(5)
    ]  # subsets of min(100, 30, 25) = 25
    assert (mean, std) == pytest.approx((np.mean(values), np.std(values)), rel=1e-12)
    assert kernel_inception_distance(first, second, subsets=5, seed=3) == (mean, std)


def test_kid_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(10, 3\) and \(10, 4\)"):
        kernel_inception_distance(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="at least 2 images"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((10, 3)))
