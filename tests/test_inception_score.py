"""Inception Score: streamed sums equal OpenAI's per-split formula; its bounds; misuse is an
error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax

from jaxgan.metrics.inception_score import InceptionScore, inception_score


def openai_inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """OpenAI's improved-gan code: softmax, consecutive splits, exp(mean KL(p(y|x) || p(y)))."""
    preds = softmax(logits.astype(np.float64), axis=1)
    scores = []
    for i in range(splits):
        part = preds[i * len(preds) // splits : (i + 1) * len(preds) // splits]
        kl = part * (np.log(part) - np.log(np.mean(part, axis=0, keepdims=True)))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_streamed_score_equals_openai_formula():
    logits = (
        np.random.default_rng(0).normal(scale=3, size=(103, 1008)).astype(np.float32)
    )  # 103: uneven splits
    expected = openai_inception_score(logits)
    streamed = InceptionScore(103)
    for batch in np.split(logits, [7, 14, 50, 51]):
        streamed.update(batch)
    assert streamed.result() == pytest.approx(expected, rel=1e-10)
    assert inception_score(logits) == pytest.approx(expected, rel=1e-10)
    assert expected[0] > 1.5 and expected[1] > 0


def test_bounds_one_for_uniform_and_classes_for_confident_balanced():
    assert inception_score(np.zeros((50, 10)))[0] == pytest.approx(1.0, abs=1e-12)
    confident = np.full((100, 10), -50.0)
    confident[np.arange(100), np.arange(100) % 10] = 50.0  # each split holds every class once
    assert inception_score(confident) == pytest.approx((10.0, 0.0), abs=1e-9)
    assert inception_score(np.tile(confident[:1], (100, 1)))[0] == pytest.approx(
        1.0, abs=1e-9
    )  # one mode


def test_misuse_is_an_error():
    with pytest.raises(ValueError, match="at least 10 images"):
        InceptionScore(5)
    score = InceptionScore(20).update(np.zeros((15, 4)))
    with pytest.raises(ValueError, match="set up for 20 images got 15"):
        score.result()
    with pytest.raises(ValueError, match="more than the 20 images"):
        score.update(np.zeros((6, 4)))
