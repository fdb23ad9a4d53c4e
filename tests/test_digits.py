"""The shipped digits classifier: small, accurate on the held-out digits; its metrics on real and
bad sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors import safe_open

from jaxgan.data.sources import DIGITS_TEST, digits_images, digits_labels
from jaxgan.metrics import digits


@pytest.fixture(scope="module")
def classifier():
    return digits.DigitsClassifier()


def test_weights_file_is_small_and_records_its_training():
    assert digits.WEIGHTS_PATH.stat().st_size < 500_000
    with safe_open(str(digits.WEIGHTS_PATH), "np") as handle:
        metadata = handle.metadata()
    record = json.loads(metadata["jaxgan"])
    assert record["trained_by"] == "scripts/train_digits_classifier.py"
    assert record["test_accuracy_32"] >= 0.97 and record["test_accuracy_64"] >= 0.97


@pytest.mark.parametrize("size, nc", [(32, 1), (64, 3)])
def test_held_out_accuracy_is_at_least_97_percent(classifier, size, nc):
    held_out = digits_images(size, nc)[-DIGITS_TEST:]
    predictions = np.argmax(classifier.features_and_logits(held_out)[1], axis=1)
    assert np.mean(predictions == digits_labels()[-DIGITS_TEST:]) >= 0.97


def test_uint8_and_float_inputs_agree(classifier):
    images = digits_images(32, 1)[:20]
    as_float = images.astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(classifier(as_float), classifier(images), rtol=0, atol=1e-5)
    assert classifier(images).shape == (20, digits.FEATURES)


def test_real_digits_cover_every_mode_and_score_high():
    train_features, _ = digits.real_features(32, 1, "train")
    test_features, test_logits = digits.real_features(32, 1, "test")
    results = digits.digits_metrics(test_features, test_logits, train_features)
    assert results["modes"] == 10
    assert results["digits-is"] > 8
    assert results["digits-fid"] < 1
    assert abs(results["digits-kid"]) < 0.1


def test_collapsed_and_noise_sets_score_badly(classifier):
    train_features, _ = digits.real_features(32, 1, "train")
    images, labels = digits_images(32, 1), digits_labels()
    ones = images[:1500][labels[:1500] == 1][:100]
    names = ("digits-fid", "digits-is", "modes")
    collapsed = digits.digits_metrics(
        *classifier.features_and_logits(ones), train_features, names=names
    )
    assert collapsed["modes"] == 1 and collapsed["digits-is"] < 1.5 and collapsed["digits-fid"] > 5
    noise = np.random.default_rng(0).integers(0, 256, (300, 32, 32, 1), dtype=np.uint8)
    assert (
        digits.digits_metrics(*classifier.features_and_logits(noise), train_features, names=names)[
            "digits-fid"
        ]
        > 20
    )


def test_mode_coverage_counts_digits_drawn_at_least_5_percent():
    predicted = np.repeat(np.arange(10), [30, 30, 20, 10, 5, 5, 0, 0, 0, 0])  # 100 images
    logits = np.eye(10)[predicted]
    histogram = digits.class_histogram(logits)
    np.testing.assert_allclose(histogram, [0.3, 0.3, 0.2, 0.1, 0.05, 0.05, 0, 0, 0, 0])
    assert digits.modes_covered(histogram) == 6
    assert digits.modes_covered(histogram, threshold=0.1) == 4


def test_features_do_not_depend_on_the_batch_size_and_no_images_give_empty_outputs():
    images = digits_images(32, 1)[:11]
    whole = digits.DigitsClassifier(batch_size=16).features_and_logits(images)
    padded = digits.DigitsClassifier(batch_size=4).features_and_logits(
        images
    )  # 4 + 4 + 3, the last padded
    for a, b in zip(whole, padded, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    features, logits = digits.DigitsClassifier(batch_size=4).features_and_logits(images[:0])
    assert features.shape == (0, digits.FEATURES) and logits.shape == (0, digits.CLASSES)
