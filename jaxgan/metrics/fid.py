"""Fréchet distance (FID) as pytorch-fid computes it, and streaming float64 feature statistics.

`FeatureStatistics` merges batches with Chan's parallel update (means and centred co-moments in
float64), so any number of images streams through in batches of any size and gives the same mean
and unbiased covariance (`np.cov`'s N - 1) as all the features at once. Statistics files are `.npz`
with pytorch-fid's `mu` / `sigma` keys, readable by pytorch-fid and from it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from scipy import linalg

from jaxgan.atomic import atomic_path, check_writable

SQRTM_EPSILON = 1e-6  # pytorch-fid's retry offset for a near-singular product
RECOMMENDED_IMAGES = 2048  # below the feature count the covariance is rank-deficient


class FeatureStatistics:
    """Running mean and covariance of (N, D) feature batches, in float64."""

    def __init__(self, dims: int):
        self.dims, self.count = dims, 0
        self.mean = np.zeros(dims, np.float64)
        self.comoment = np.zeros(
            (dims, dims), np.float64
        )  # sum over images of (x - mean)(x - mean)^T

    def update(self, features: np.ndarray) -> FeatureStatistics:
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or features.shape[1] != self.dims:
            raise ValueError(f"features must be (N, {self.dims}), got shape {features.shape}")
        count = len(features)
        if count == 0:
            return self
        mean = features.mean(axis=0)
        centred = features - mean
        comoment = centred.T @ centred
        total = self.count + count
        delta = mean - self.mean
        self.comoment += comoment + np.outer(delta, delta) * (self.count * count / total)
        self.mean += delta * (count / total)
        self.count = total
        return self

    @property
    def covariance(self) -> np.ndarray:
        """The unbiased covariance (divided by N - 1), as `np.cov(features, rowvar=False)`."""
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 images, got {self.count}")
        return self.comoment / (self.count - 1)

    def check_count(self, what: str = "images") -> None:
        """Warn below 2,048 images: the covariance of 2,048 features is then rank-deficient."""
        if self.count < RECOMMENDED_IMAGES and self.dims >= RECOMMENDED_IMAGES:
            warnings.warn(
                f"FID from {self.count} {what}: fewer than {RECOMMENDED_IMAGES}, so the covariance "
                "is rank-deficient and the FID is biased upwards; compare only FIDs of equal "
                "counts",
                stacklevel=2,
            )

    def save(self, path: str | os.PathLike, force: bool = False, **extra: np.ndarray) -> Path:
        return save_statistics(
            path, self.mean, self.covariance, force=force, num_images=self.count, **extra
        )


def statistics_of(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of all features at once: pytorch-fid's `np.mean(axis=0)`,
    `np.cov(rowvar=False)`."""
    stats = FeatureStatistics(np.shape(features)[1]).update(features)
    return stats.mean, stats.covariance


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), in float64, as pytorch-fid.

    scipy's `sqrtm` of the product; if it is not finite (a near-singular product), 1e-6 is added to
    both diagonals and it is taken again; a small imaginary part from rounding is dropped, a large
    one (above 1e-3 on the diagonal) is an error.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
            f"{sigma2.shape} (were they made with different feature extractors?)"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # a singular product is handled below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            warnings.warn(
                f"FID: the product of the covariances is near-singular; adding {SQRTM_EPSILON} "
                "to their diagonals (as pytorch-fid does)",
                stacklevel=2,
            )
            offset = np.eye(len(sigma1)) * SQRTM_EPSILON
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"FID: the matrix square root has an imaginary component of "
                f"{np.max(np.abs(covmean.imag)):.3g}; the statistics are not valid covariances"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def save_statistics(
    path: str | os.PathLike, mu: np.ndarray, sigma: np.ndarray, force: bool = False, **extra
) -> Path:
    """Write `mu` and `sigma` (pytorch-fid's keys, float64) and any extra arrays to an `.npz`,
    atomically."""
    path = check_writable(path, force)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: statistics files end in .npz (pytorch-fid's format)")
    with atomic_path(path) as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(
            handle,
            mu=np.asarray(mu, np.float64),
            sigma=np.asarray(sigma, np.float64),
            **{k: np.asarray(v) for k, v in extra.items()},
        )
    return path


def load_statistics(path: str | os.PathLike, dims: int | None = None) -> dict[str, np.ndarray]:
    """{'mu', 'sigma', ...} from an `.npz` (pytorch-fid's or ours); errors name the file and the
    key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"statistics file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable .npz statistics file ({error})") from error
    for key in ("mu", "sigma"):
        if key not in arrays:
            raise ValueError(
                f"{path}: no {key!r} array (found {sorted(arrays)}); "
                "expected pytorch-fid's mu/sigma"
            )
    mu, sigma = arrays["mu"], arrays["sigma"]
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(
            f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} are not a mean and its covariance"
        )
    if dims is not None and len(mu) != dims:
        raise ValueError(
            f"{path}: statistics of {len(mu)} features, but this metric uses {dims} "
            "(made with another feature extractor?)"
        )
    return arrays
