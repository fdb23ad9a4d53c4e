"""Precision, recall, density and coverage: the published definitions (a direct numpy computation),
their known values on equal and collapsed distributions, and the memorisation check."""

from __future__ import annotations

import numpy as np
import pytest

from jaxgan import metrics, sweep_summary
from jaxgan.metrics import prdc


def by_definition(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    """Kynkaanniemi et al.'s precision and recall, Naeem et al.'s density and coverage, with one
    norm per pair (no matrix tricks)."""

    def radius(points, i):
        distances = sorted(np.linalg.norm(points[i] - q) for j, q in enumerate(points) if j != i)
        return distances[k - 1]

    real_radii = [radius(real, i) for i in range(len(real))]
    fake_radii = [radius(fake, j) for j in range(len(fake))]
    inside = np.array(
        [[np.linalg.norm(r - f) < real_radii[i] for f in fake] for i, r in enumerate(real)]
    )  # (real, fake)
    recalled = [
        any(np.linalg.norm(r - f) < fake_radii[j] for j, f in enumerate(fake)) for r in real
    ]
    return {
        "precision": inside.any(0).mean(),
        "recall": np.mean(recalled),
        "density": inside.sum() / (k * len(fake)),
        "coverage": inside.any(1).mean(),
    }


@pytest.mark.parametrize("k", [1, 3, 5])
def test_values_equal_the_published_definitions(k, monkeypatch):
    rng = np.random.default_rng(k)
    real, fake = rng.normal(size=(40, 6)), rng.normal(0.5, 1.2, size=(30, 6))
    monkeypatch.setattr(prdc, "BLOCK", 7)  # the blocked computation, across block edges
    found = metrics.precision_recall_density_coverage(real, fake, k)
    assert found == pytest.approx(by_definition(real, fake, k), abs=1e-12)
    assert 0 < found["precision"] < 1 and 0 < found["recall"] < 1


def test_two_samples_of_one_distribution_have_density_near_1_and_coverage_near_1():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    found = prdc.with_papers_k(real, fake)
    assert 0.9 < found["density"] < 1.1
    assert found["coverage"] > 0.9 and found["precision"] > 0.6 and found["recall"] > 0.6


def test_a_generator_of_one_digit_has_low_recall_and_coverage():
    """Real: the digits' training split; "generated": only the 3s among them (the classifier's
    features), as a generator collapsed to one digit would draw."""
    from jaxgan.metrics.digits import real_features

    features, logits = real_features(32, 1, "train")
    threes = features[logits.argmax(1) == 3]
    found = prdc.with_papers_k(features, threes)
    assert found["recall"] < 0.2 and found["coverage"] < 0.2
    assert found["precision"] > 0.9  # what it draws is real


def test_memorisation_ratio_is_low_for_copies_and_near_1_for_new_samples():
    rng = np.random.default_rng(0)
    train, held_out = rng.normal(size=(500, 8)), rng.normal(size=(200, 8))
    copies = train[:200] + 1e-3 * rng.normal(size=(200, 8))
    assert prdc.memorisation(train, copies, held_out)["ratio"] < 0.01
    fresh = rng.normal(size=(200, 8))
    assert 0.8 < prdc.memorisation(train, fresh, held_out)["ratio"] < 1.25


def test_sweep_summaries_flag_collapsed_runs():
    assert sweep_summary.collapsed({"eval/modes": 10, "eval/max_digit_share": 0.12}) is None
    assert sweep_summary.collapsed({"eval/modes": 7}) == "7/10 digits"
    assert "one digit is 62% of the images" in sweep_summary.collapsed(
        {"eval/modes": 9, "eval/max_digit_share": 0.62}
    )
