"""Precision and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem et al. 2020) of
generated features against real ones, as clovaai/generative-evaluation-prdc computes them, and a
memorisation check.

A real sample's k-NN ball has the radius of its k-th nearest real neighbour (itself excluded);
precision is the share of fakes inside some real ball, recall the share of reals inside some fake
ball, density the mean count of real balls holding a fake over k, coverage the share of real balls
holding a fake. Distances are Euclidean, computed in float64 blocks so that 50,000 x 50,000 fits.
"""

from __future__ import annotations

import numpy as np

BLOCK = 2048  # rows of a distance block
PRECISION_RECALL_K, DENSITY_COVERAGE_K = 3, 5  # the papers' k (Kynkaanniemi et al.; Naeem et al.)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances, float64."""
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))


def _blocks(a: np.ndarray, b: np.ndarray):
    for start in range(0, len(a), BLOCK):
        yield start, _distances(a[start : start + BLOCK], b)


def kth_neighbour_radii(features: np.ndarray, nearest_k: int) -> np.ndarray:
    """Each row's distance to its k-th nearest other row."""
    if len(features) <= nearest_k:
        raise ValueError(
            f"{len(features)} samples: k-NN radii need more than nearest_k={nearest_k}"
        )
    radii = np.empty(len(features))
    for start, block in _blocks(features, features):
        radii[start : start + len(block)] = np.partition(block, nearest_k, axis=1)[:, nearest_k]
    return radii


def precision_recall_density_coverage(
    real_features: np.ndarray, fake_features: np.ndarray, nearest_k: int
) -> dict[str, float]:
    """{"precision", "recall", "density", "coverage"} of fakes against reals, with k = `nearest_k`
    (the papers use 3 for precision and recall, 5 for density and coverage)."""
    real = np.asarray(real_features, np.float64).reshape(len(real_features), -1)
    fake = np.asarray(fake_features, np.float64).reshape(len(fake_features), -1)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features have {real.shape[1]} dimensions, fake {fake.shape[1]}")
    real_radii, fake_radii = (
        kth_neighbour_radii(real, nearest_k),
        kth_neighbour_radii(fake, nearest_k),
    )
    inside_real = np.zeros(len(fake), np.int64)  # per fake: how many real balls hold it
    real_covered = np.zeros(len(real), bool)  # per real: its ball holds a fake
    real_recalled = np.zeros(len(real), bool)  # per real: inside some fake ball
    for start, block in _blocks(real, fake):  # block[i, j] = |real_i - fake_j|
        inside = block < real_radii[start : start + len(block), None]
        inside_real += inside.sum(0)
        real_covered[start : start + len(block)] = inside.any(1)
        real_recalled[start : start + len(block)] = (block < fake_radii[None, :]).any(1)
    return {
        "precision": float((inside_real > 0).mean()),
        "recall": float(real_recalled.mean()),
        "density": float(inside_real.sum() / (nearest_k * len(fake))),
        "coverage": float(real_covered.mean()),
    }


def with_papers_k(real_features: np.ndarray, fake_features: np.ndarray) -> dict[str, float]:
    """Precision and recall with k = 3, density and coverage with k = 5, as the papers set k."""
    three = precision_recall_density_coverage(real_features, fake_features, PRECISION_RECALL_K)
    five = precision_recall_density_coverage(real_features, fake_features, DENSITY_COVERAGE_K)
    return {
        "precision": three["precision"],
        "recall": three["recall"],
        "density": five["density"],
        "coverage": five["coverage"],
    }


def memorisation(
    train_features: np.ndarray, fake_features: np.ndarray, held_out_features: np.ndarray
) -> dict[str, float]:
    """How close generated images come to training images, against held-out real images: the
    median distance of each fake, and of each held-out image, to its nearest training image, and
    their ratio (well below 1: the generator copies its training set)."""
    train = np.asarray(train_features, np.float64).reshape(len(train_features), -1)

    def nearest(features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, np.float64).reshape(len(features), -1)
        found = np.empty(len(features))
        for start, block in _blocks(features, train):
            found[start : start + len(block)] = block.min(1)
        return found

    fake, held_out = (
        float(np.median(nearest(fake_features))),
        float(np.median(nearest(held_out_features))),
    )
    return {"fake_to_train": fake, "held_out_to_train": held_out, "ratio": fake / held_out}
