"""PSNR and SSIM in JAX, as scikit-image and super-resolution papers compute them.

Inputs are (..., H, W, C) arrays whose values span `data_range` (1 for [0, 1], 255 for 8-bit, 2 for
jaxgan's [-1, 1]); results have shape (...): one value per image. `crop_border` drops that many
pixels on each side (super-resolution papers crop the scale factor); `y_channel` compares the BT.601
luma Y of RGB images as MATLAB's rgb2ycbcr gives it (16..235 on the 8-bit scale), as those papers
report.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# BT.601 Y of [0, 1] RGB on the 0..255 scale: 16 + 65.481 R + 128.553 G + 24.966 B (MATLAB's
# rgb2ycbcr).
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def _prepare(x: jax.Array, y: jax.Array, data_range: float, crop_border: int, y_channel: bool):
    """Both images as float32 in [0, 1] (Y only when asked), border cropped."""
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    x, y = (jnp.asarray(a, jnp.float32) / data_range for a in (x, y))
    if y_channel:
        if x.shape[-1] != 3:
            raise ValueError(f"y_channel needs RGB images (3 channels), got {x.shape[-1]}")
        weights = jnp.array(Y_WEIGHTS, jnp.float32) / 255
        x, y = ((a @ weights)[..., None] + Y_OFFSET / 255 for a in (x, y))
    if crop_border:
        x, y = (a[..., crop_border:-crop_border, crop_border:-crop_border, :] for a in (x, y))
    return x, y


def psnr(
    x: jax.Array,
    y: jax.Array,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Peak signal-to-noise ratio in dB per image; `mask` (..., H, W, 1), 1 = counted (e.g. a hole
    only)."""
    x, y = _prepare(x, y, data_range, crop_border, y_channel)
    error = jnp.square(x - y)
    if mask is None:
        mse = jnp.mean(error, axis=(-3, -2, -1))
    else:
        mask = jnp.asarray(mask, jnp.float32)
        if crop_border:
            mask = mask[..., crop_border:-crop_border, crop_border:-crop_border, :]
        mse = jnp.sum(error * mask, axis=(-3, -2, -1)) / (
            jnp.sum(mask, axis=(-3, -2, -1)) * x.shape[-1]
        )
    return 10 * jnp.log10(1.0 / mse)


def _window(gaussian: bool, sigma: float, win_size: int | None) -> jax.Array:
    """The 1-D filter: Gaussian truncated at 3.5 sigma (scipy's gaussian_filter as skimage calls
    it), or uniform."""
    if gaussian:
        radius = int(3.5 * sigma + 0.5)
        taps = jnp.exp(-0.5 * (jnp.arange(-radius, radius + 1, dtype=jnp.float32) / sigma) ** 2)
        return taps / jnp.sum(taps)
    size = win_size or 7
    return jnp.full((size,), 1.0 / size, jnp.float32)


def _filter(images: jax.Array, taps: jax.Array) -> jax.Array:
    """Separable 'valid' filtering of (B, H, W, C) over H and W, channel by channel."""
    channels = images.shape[-1]
    size = taps.shape[0]
    kernel_rows = jnp.tile(taps.reshape(size, 1, 1, 1), (1, 1, 1, channels))
    kernel_cols = jnp.tile(taps.reshape(1, size, 1, 1), (1, 1, 1, channels))
    dims = ("NHWC", "HWIO", "NHWC")
    out = jax.lax.conv_general_dilated(
        images,
        kernel_rows,
        (1, 1),
        "VALID",
        dimension_numbers=dims,
        feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST,
    )
    return jax.lax.conv_general_dilated(
        out,
        kernel_cols,
        (1, 1),
        "VALID",
        dimension_numbers=dims,
        feature_group_count=channels,
        precision=jax.lax.Precision.HIGHEST,
    )


def ssim(
    x: jax.Array,
    y: jax.Array,
    data_range: float = 1.0,
    crop_border: int = 0,
    y_channel: bool = False,
    gaussian: bool = True,
    sigma: float = 1.5,
    win_size: int | None = None,
) -> jax.Array:
    """Structural similarity per image, averaged over channels.

    Default: Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, population covariances), i.e.
    skimage's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`. With `gaussian=False`: skimage's defaults (7x7 uniform window,
    sample covariances). Like skimage, the mean is over pixels whose window lies inside the image.
    """
    x, y = _prepare(x, y, data_range, crop_border, y_channel)
    taps = _window(gaussian, sigma, win_size)
    size = taps.shape[0]
    if x.shape[-3] < size or x.shape[-2] < size:
        raise ValueError(
            f"SSIM's {size}x{size} window does not fit images of {x.shape[-3]}x{x.shape[-2]}"
        )
    batch_shape = x.shape[:-3]
    x, y = (a.reshape((-1,) + a.shape[-3:]) for a in (x, y))
    return _ssim_value(x, y, taps, gaussian, size).reshape(batch_shape)


def _ssim_value(
    x: jax.Array, y: jax.Array, taps: jax.Array, gaussian: bool, size: int
) -> jax.Array:
    """Mean SSIM of (B, H, W, C) [0, 1] images; each image is shifted by its mean before the
    products are filtered (the same variances, without float32 cancellation)."""
    c1, c2 = 0.01**2, 0.03**2
    centre_x = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    centre_y = jnp.mean(y, axis=(1, 2, 3), keepdims=True)
    xs, ys = x - centre_x, y - centre_y
    mean_x, mean_y = _filter(xs, taps), _filter(ys, taps)  # local means of the shifted images
    var_x = _filter(xs * xs, taps) - mean_x**2
    var_y = _filter(ys * ys, taps) - mean_y**2
    cov = _filter(xs * ys, taps) - mean_x * mean_y
    if not gaussian:  # skimage's sample covariances
        correction = size * size / (size * size - 1)
        var_x, var_y, cov = var_x * correction, var_y * correction, cov * correction
    mean_x, mean_y = mean_x + centre_x, mean_y + centre_y
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov + c2)
    denominator = (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    return jnp.mean(numerator / denominator, axis=(1, 2, 3))
