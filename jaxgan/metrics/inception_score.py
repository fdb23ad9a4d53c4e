"""Inception Score as OpenAI's reference code computes it, streamed so that no image set sits in
memory.

IS = exp(E_x KL(p(y|x) || p(y))) over each of 10 consecutive splits of the images (split i holds
images [i N / 10, (i+1) N / 10)); the mean and standard deviation over splits are reported. For the
FID Inception the class probabilities are the softmax of its 1008 logits without the last bias.
Per split only sums are kept: sum_x sum_y p log p and sum_x p(y|x), in float64.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

DEFAULT_SPLITS = 10


class InceptionScore:
    """Accumulates logits of `num_images` images, in order, batch by batch;
    `result()` -> (mean, std)."""

    def __init__(self, num_images: int, splits: int = DEFAULT_SPLITS):
        if num_images < splits:
            raise ValueError(
                f"Inception Score over {splits} splits needs at least {splits} images, "
                f"got {num_images}"
            )
        self.num_images, self.splits, self.seen = num_images, splits, 0
        self.bounds = [i * num_images // splits for i in range(splits + 1)]
        self.neg_entropy = np.zeros(splits, np.float64)  # per split: sum_x sum_y p log p
        self.marginal = None  # per split: sum_x p(y|x)

    def update(self, logits: np.ndarray) -> InceptionScore:
        log_p = log_softmax(np.asarray(logits, np.float64), axis=1)
        if self.marginal is None:
            self.marginal = np.zeros((self.splits, log_p.shape[1]), np.float64)
        if self.seen + len(log_p) > self.num_images:
            raise ValueError(
                f"more than the {self.num_images} images this Inception Score was set up for"
            )
        p = np.exp(log_p)
        split_of = (
            np.searchsorted(self.bounds, np.arange(self.seen, self.seen + len(p)), side="right") - 1
        )
        np.add.at(self.neg_entropy, split_of, (p * log_p).sum(axis=1))
        np.add.at(self.marginal, split_of, p)
        self.seen += len(p)
        return self

    def result(self) -> tuple[float, float]:
        if self.seen != self.num_images:
            raise ValueError(f"Inception Score set up for {self.num_images} images got {self.seen}")
        counts = np.diff(self.bounds).astype(np.float64)
        marginal = self.marginal / counts[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = np.where(marginal > 0, marginal * np.log(marginal), 0.0).sum(axis=1)
        scores = np.exp(
            self.neg_entropy / counts - cross
        )  # mean KL = E[sum p log p] - sum p_y log p_y
        return float(scores.mean()), float(scores.std())


def inception_score(logits: np.ndarray, splits: int = DEFAULT_SPLITS) -> tuple[float, float]:
    """(mean, std) of the Inception Score of all `logits` (N, classes) at once."""
    return InceptionScore(len(logits), splits).update(logits).result()
