"""The Flax FID Inception equals the PyTorch one (torch_ref/inception.py) loaded from the same
weights file.

pytorch-fid's real weights cannot be downloaded here, so the file holds random weights in its exact
layout, initialised so that the features depend strongly on the image (He-scaled convolutions,
BatchNorm statistics measured on random images): a wrong resize or normalisation fails by orders
of magnitude, which `test_the_comparison_detects_wrong_preprocessing` proves.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxgan.convert import ConversionError
from jaxgan.metrics import inception_convert
from jaxgan.metrics.inception import (
    InceptionFeatures,
    compiled_network,
    preprocess,
    resize_bilinear,
)
from torch_ref.inception import FIDInception as TorchInception
from torch_ref.inception import random_state_dict

TOLERANCE = 1e-4  # max |jax - torch| / max |torch|


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """(path of a .pth in pytorch-fid's layout, its state dict, the PyTorch model holding it)."""
    state_dict = random_state_dict(seed=0)
    path = tmp_path_factory.mktemp("inception") / inception_convert.WEIGHTS_FILE
    torch.save(state_dict, path)
    model = TorchInception().eval()
    model.load_state_dict(state_dict)
    return path, state_dict, model


@pytest.fixture(scope="module")
def extractor(weights):
    return InceptionFeatures(weights[0], batch_size=2)


def torch_features(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-fid's pipeline: uint8 -> ToTensor ([0, 1]); jaxgan's [-1, 1] floats -> [0, 1]."""
    unit = images / 255.0 if images.dtype == np.uint8 else (images + 1) / 2
    unit = np.repeat(unit, 3, axis=-1) if unit.shape[-1] == 1 else unit
    with torch.no_grad():
        features = model(torch.from_numpy(unit.astype(np.float32).transpose(0, 3, 1, 2)))
        return features.numpy(), model.logits(features).numpy()


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


IMAGES = {  # smaller and larger than 299, not square; uint8 and float; colour and grayscale
    "uint8_small": lambda rng: rng.integers(0, 256, (3, 23, 41, 3), dtype=np.uint8),
    "float_large": lambda rng: rng.uniform(-1, 1, (2, 331, 417, 3)).astype(np.float32),
    "float_gray_tall": lambda rng: rng.uniform(-1, 1, (2, 64, 20, 1)).astype(np.float32),
    "uint8_exact": lambda rng: rng.integers(0, 256, (1, 299, 299, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_features_and_logits_match_pytorch(weights, extractor, kind):
    images = IMAGES[kind](np.random.default_rng(len(kind)))
    features, logits = extractor.features_and_logits(images)
    expected_features, expected_logits = torch_features(weights[2], images)
    assert features.shape == (len(images), 2048) and logits.shape == (len(images), 1008)
    assert relative_error(features, expected_features) < TOLERANCE
    assert relative_error(logits, expected_logits) < TOLERANCE
    if (
        len(images) > 1
    ):  # different images give different features: the comparison is not of constants
        assert relative_error(features[1:], features[:1]) > 100 * TOLERANCE


def test_resize_matches_torch_interpolate():
    rng = np.random.default_rng(3)
    for height, width in ((23, 41), (331, 417), (299, 150), (7, 600)):
        images = rng.random((2, height, width, 3), dtype=np.float32)
        expected = (
            torch.nn.functional.interpolate(
                torch.from_numpy(images.transpose(0, 3, 1, 2)),
                size=(299, 299),
                mode="bilinear",
                align_corners=False,
            )
            .numpy()
            .transpose(0, 2, 3, 1)
        )
        np.testing.assert_allclose(
            np.asarray(resize_bilinear(jnp.asarray(images), 299, 299)), expected, rtol=0, atol=3e-7
        )


def test_the_comparison_detects_wrong_preprocessing(weights, extractor):
    """An antialiased resize or a [0, 1] input would miss the tolerance by far: the test has
    power."""
    images = np.random.default_rng(5).integers(0, 256, (2, 331, 417, 3), dtype=np.uint8)
    expected, _ = torch_features(weights[2], images)
    network = compiled_network()
    unit = jnp.asarray(images, jnp.float32) / 255
    antialiased = 2 * jax.image.resize(unit, (2, 299, 299, 3), "linear", antialias=True) - 1
    unnormalised = resize_bilinear(unit, 299, 299)
    for wrong in (antialiased, unnormalised):
        assert (
            relative_error(np.asarray(network(extractor.variables, wrong)[0]), expected)
            > 100 * TOLERANCE
        )
    right = np.asarray(network(extractor.variables, preprocess(jnp.asarray(images)))[0])
    assert relative_error(right, expected) < TOLERANCE


def test_loads_files_without_num_batches_tracked_and_safetensors(weights, extractor, tmp_path):
    from safetensors.numpy import save_file

    images = np.random.default_rng(7).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    expected = extractor(images)
    old = {k: v for k, v in weights[1].items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    save_file({k: v.numpy() for k, v in weights[1].items()}, str(tmp_path / "copy.safetensors"))
    for name in ("old.pth", "copy.safetensors"):
        np.testing.assert_array_equal(
            InceptionFeatures(tmp_path / name, batch_size=2)(images), expected
        )


def test_fc_bias_is_dropped_as_openai_inception_score_does(weights, extractor, tmp_path):
    state_dict = dict(weights[1])
    state_dict["fc.bias"] = torch.full((1008,), 100.0)
    torch.save(state_dict, tmp_path / "bias.pth")
    images = np.random.default_rng(8).integers(0, 256, (2, 30, 30, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        InceptionFeatures(tmp_path / "bias.pth", 2).features_and_logits(images)[1],
        extractor.features_and_logits(images)[1],
    )


def test_table_round_trips_every_key(weights):
    numpy_state = {k: v.numpy() for k, v in weights[1].items()}
    back = inception_convert.flax_to_torch(
        inception_convert.torch_to_flax(numpy_state), fc_bias=numpy_state["fc.bias"]
    )
    assert set(back) == {k for k in numpy_state if not k.endswith("num_batches_tracked")}
    for key, value in back.items():
        np.testing.assert_array_equal(value, numpy_state[key], err_msg=key)
    assert len(inception_convert.table()) == len(numpy_state)  # every key has exactly one row


def test_conversion_errors_name_the_key_and_shapes(weights):
    state_dict = {k: v.numpy() for k, v in weights[1].items()}
    wrong = {
        **state_dict,
        "Mixed_6b.branch7x7_2.conv.weight": np.zeros((128, 128, 7, 1), np.float32),
    }
    with pytest.raises(
        ConversionError,
        match=r"Mixed_6b\.branch7x7_2\.conv\.weight.*\(128, 128, 1, 7\).*"
        r"\(128, 128, 7, 1\)",
    ):
        inception_convert.torch_to_flax(wrong)
    missing = {k: v for k, v in state_dict.items() if k != "Mixed_7c.branch_pool.bn.running_var"}
    with pytest.raises(ConversionError, match=r"missing.*Mixed_7c\.branch_pool\.bn\.running_var"):
        inception_convert.torch_to_flax(missing)
    extra = {**state_dict, "AuxLogits.fc.weight": np.zeros((1000, 768), np.float32)}
    with pytest.raises(ConversionError, match=r"unexpected.*AuxLogits\.fc\.weight"):
        inception_convert.torch_to_flax(extra)
