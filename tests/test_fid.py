"""FID: the distance against float64 references, streaming statistics, batch-size invariance, .npz
files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import linalg

from jaxgan.data.sources import DIGITS_TEST, digits_images
from jaxgan.metrics import fid
from jaxgan.metrics.digits import DigitsClassifier
from jaxgan.metrics.fid import (
    FeatureStatistics,
    frechet_distance,
    load_statistics,
    save_statistics,
    statistics_of,
)


def random_statistics(seed: int, dims: int = 24, count: int = 200):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dims, dims)) / np.sqrt(dims)
    return statistics_of(rng.normal(size=(count, dims)) @ mixing + rng.normal(size=dims))


def reference_fid(mu1, sigma1, mu2, sigma2) -> float:
    """Tr sqrt(S1 S2) = sum of sqrt(eigenvalues of S1^1/2 S2 S1^1/2), a symmetric form (eigh,
    float64)."""
    values, vectors = linalg.eigh(sigma1)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = np.clip(linalg.eigvalsh(root @ sigma2 @ root), 0, None)
    return float(
        np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sum(np.sqrt(middle))
    )


def test_frechet_distance_matches_a_float64_reference():
    for seed in range(3):
        first, second = random_statistics(seed), random_statistics(seed + 10)
        expected = reference_fid(*first, *second)
        assert expected > 1
        assert frechet_distance(*first, *second) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(
        expected, rel=1e-12
    )


def test_identical_sets_give_zero():
    statistics = random_statistics(0, dims=64, count=500)
    assert abs(frechet_distance(*statistics, *statistics)) < 1e-9 * np.trace(statistics[1])


def test_near_singular_product_retries_with_pytorch_fid_offset(monkeypatch):
    first, second = random_statistics(1), random_statistics(2)
    calls = []
    real_sqrtm = linalg.sqrtm

    def flaky_sqrtm(matrix):  # the first attempt "fails" as sqrtm does on a near-singular product
        calls.append(matrix)
        return np.full_like(matrix, np.inf) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid.linalg, "sqrtm", flaky_sqrtm)
    with pytest.warns(UserWarning, match="near-singular"):
        value = frechet_distance(*first, *second)
    offset = np.eye(len(first[0])) * 1e-6
    np.testing.assert_allclose(calls[1], (first[1] + offset) @ (second[1] + offset), rtol=1e-15)
    assert value == pytest.approx(
        reference_fid(first[0], first[1] + offset, second[0], second[1] + offset) - 2 * 24 * 1e-6,
        rel=1e-9,
    )


def test_invalid_statistics_are_errors():
    mu, sigma = random_statistics(0, dims=4)
    with pytest.raises(ValueError, match="imaginary component"):
        frechet_distance(mu, np.eye(4), mu, -np.eye(4))
    with pytest.raises(ValueError, match=r"mu \(4,\) vs \(5,\)"):
        frechet_distance(mu, sigma, np.zeros(5), np.eye(5))


def test_streaming_statistics_equal_numpy_on_all_features_at_once():
    rng = np.random.default_rng(0)
    features = (rng.normal(size=(1013, 16)) + 1000).astype(
        np.float32
    )  # a large mean tests the stable update
    statistics = FeatureStatistics(16)
    for batch in np.split(features, [1, 8, 300, 301, 777]):
        statistics.update(batch)
    assert statistics.count == 1013
    np.testing.assert_allclose(
        statistics.mean, np.mean(features.astype(np.float64), axis=0), rtol=1e-13
    )
    np.testing.assert_allclose(
        statistics.covariance,
        np.cov(features.astype(np.float64), rowvar=False),
        rtol=1e-9,
        atol=1e-12,
    )
    with pytest.raises(ValueError, match=r"features must be \(N, 16\)"):
        statistics.update(np.zeros((3, 8)))


@pytest.fixture(scope="module")
def digits_reference():
    classifier = DigitsClassifier(batch_size=500)
    held_out = digits_images(32, 1)[-DIGITS_TEST:]
    return statistics_of(classifier(held_out))


def test_fid_does_not_depend_on_the_batch_size(digits_reference):
    """1,013 training digits (a multiple of neither 7 nor 50) streamed in batches of 7 and of 50."""
    images = digits_images(32, 1)[:1013]
    values = []
    for batch_size in (7, 50):
        classifier, statistics = DigitsClassifier(batch_size=batch_size), FeatureStatistics(64)
        for start in range(0, len(images), batch_size):
            statistics.update(classifier(images[start : start + batch_size]))
        values.append(frechet_distance(statistics.mean, statistics.covariance, *digits_reference))
    assert values[0] > 0.1
    assert values[0] == pytest.approx(values[1], rel=1e-6)


def test_statistics_files_use_pytorch_fid_keys(tmp_path):
    mu, sigma = random_statistics(3)
    path = save_statistics(tmp_path / "stats.npz", mu, sigma, num_images=200)
    with np.load(path) as data:  # exactly how pytorch-fid reads a reference file
        np.testing.assert_array_equal(data["mu"][:], mu)
        np.testing.assert_array_equal(data["sigma"][:], sigma)
    np.savez_compressed(
        tmp_path / "pytorch_fid.npz", mu=mu.astype(np.float32), sigma=sigma
    )  # as pytorch-fid writes
    loaded = load_statistics(tmp_path / "pytorch_fid.npz", dims=24)
    assert frechet_distance(loaded["mu"], loaded["sigma"], mu, sigma) == pytest.approx(0, abs=1e-5)
    assert list(tmp_path.glob(".*.tmp")) == []
    with pytest.raises(FileExistsError, match="stats.npz exists"):
        save_statistics(tmp_path / "stats.npz", mu, sigma)


def test_statistics_file_errors_name_the_file(tmp_path):
    np.savez(tmp_path / "no_sigma.npz", mu=np.zeros(3))
    with pytest.raises(ValueError, match=r"no_sigma.npz: no 'sigma' array"):
        load_statistics(tmp_path / "no_sigma.npz")
    save_statistics(tmp_path / "small.npz", np.zeros(3), np.eye(3))
    with pytest.raises(
        ValueError, match=r"small.npz: statistics of 3 features, but this metric uses 2048"
    ):
        load_statistics(tmp_path / "small.npz", dims=2048)
    with pytest.raises(FileNotFoundError, match="missing.npz does not exist"):
        load_statistics(tmp_path / "missing.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz: not a readable"):
        load_statistics(tmp_path / "broken.npz")


def test_warns_below_2048_images_for_inception_features():
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="FID from 100 images: fewer than 2048"):
        FeatureStatistics(2048).update(rng.normal(size=(100, 2048))).check_count()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FeatureStatistics(64).update(
            rng.normal(size=(100, 64))
        ).check_count()  # 64 features: full rank
