"""PSNR and SSIM agree with scikit-image on the same images (<= 1e-3 dB, <= 1e-4)."""

import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.metrics as reference

from jaxgan.metrics.image import psnr, ssim


@pytest.fixture(scope="module")
def pair():
    """A real photo crop and a noisy, blurred copy of it, uint8 RGB."""
    clean = skimage.data.astronaut()[40:140, 180:300]
    rng = np.random.default_rng(0)
    damaged = np.clip(clean.astype(np.float64) + rng.normal(0, 18, clean.shape), 0, 255)
    damaged[::2] = (damaged[::2] + damaged[1::2]) / 2
    return clean, np.round(damaged).astype(np.uint8)


def wang(a, b, **kwargs):
    return reference.structural_similarity(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, **kwargs
    )


def test_psnr_matches_skimage_8bit_and_unit_range(pair):
    clean, damaged = pair
    expected = reference.peak_signal_noise_ratio(clean, damaged, data_range=255)
    assert abs(float(psnr(clean, damaged, data_range=255)) - expected) <= 1e-3
    assert abs(float(psnr(clean / 255.0, damaged / 255.0)) - expected) <= 1e-3


def test_ssim_matches_skimage_wang_and_default_windows(pair):
    clean, damaged = pair
    expected = wang(clean, damaged, data_range=255, channel_axis=-1)
    assert abs(float(ssim(clean, damaged, data_range=255)) - expected) <= 1e-4
    default = reference.structural_similarity(clean, damaged, data_range=255, channel_axis=-1)
    assert (
        abs(default - expected) > 1e-2
    )  # the two definitions differ, so each check below means something
    assert abs(float(ssim(clean, damaged, data_range=255, gaussian=False)) - default) <= 1e-4


def test_grayscale_and_batches(pair):
    clean, damaged = (skimage.color.rgb2gray(a) for a in pair)  # float [0, 1]
    assert (
        abs(
            float(ssim(clean[..., None], damaged[..., None])) - wang(clean, damaged, data_range=1.0)
        )
        <= 1e-4
    )
    batch_a = np.stack([pair[0], pair[1]])
    batch_b = np.stack([pair[1], pair[1]])
    values = np.asarray(psnr(batch_a, batch_b, data_range=255))
    assert values.shape == (2,) and np.isinf(values[1])
    assert (
        abs(values[0] - reference.peak_signal_noise_ratio(pair[0], pair[1], data_range=255)) <= 1e-3
    )
    per_image = np.asarray(ssim(batch_a, np.stack([pair[1], pair[0]]), data_range=255))
    assert per_image.shape == (2,) and abs(per_image[0] - per_image[1]) <= 1e-6  # symmetric


def test_y_channel_with_border_crop_as_super_resolution_papers(pair):
    clean, damaged = pair
    luma = [skimage.color.rgb2ycbcr(a)[4:-4, 4:-4, 0] for a in pair]  # BT.601 Y, 16..235
    expected_psnr = reference.peak_signal_noise_ratio(luma[0], luma[1], data_range=255)
    assert (
        abs(float(psnr(clean, damaged, 255, crop_border=4, y_channel=True)) - expected_psnr) <= 1e-3
    )
    expected_ssim = wang(luma[0], luma[1], data_range=255)
    assert (
        abs(float(ssim(clean, damaged, 255, crop_border=4, y_channel=True)) - expected_ssim) <= 1e-4
    )


def test_hole_only_psnr_counts_only_the_mask(pair):
    clean, damaged = pair
    mask = np.zeros(clean.shape[:2] + (1,), np.float32)
    mask[30:60, 40:90] = 1
    expected = reference.peak_signal_noise_ratio(
        clean[30:60, 40:90], damaged[30:60, 40:90], data_range=255
    )
    assert abs(float(psnr(clean, damaged, 255, mask=mask)) - expected) <= 1e-3


def test_bad_inputs_are_clear_errors(pair):
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(pair[0], pair[1][:-1])
    with pytest.raises(ValueError, match="RGB"):
        psnr(pair[0][..., :1], pair[1][..., :1], y_channel=True)
    with pytest.raises(ValueError, match="window"):
        ssim(pair[0][:8, :8], pair[1][:8, :8])
