"""Restoration scores: PSNR and SSIM (and digits-KID) of restored crops against the clean ones.

Clean held-out crops (`heldout.held_out_crops`) are degraded with a fixed seed; every method's
output is rounded to 8 bits (as a saved file is) and compared with the clean crop. Inpainting also
reports hole-only PSNR (the error over the missing pixels alone: about 6 dB below whole-image PSNR
for a centre square, whose hole is a quarter of the image); super-resolution also reports PSNR and
SSIM on BT.601 Y with a border of the scale factor cropped, as super-resolution papers do. A crop
restored exactly (a flat hole filled exactly) scores the PSNR of 8-bit rounding noise, 58.9 dB,
not infinity, so that one such crop cannot make a mean infinite.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxgan.metrics.image import psnr, ssim
from jaxgan.tasks.restore.degradations import Degradation

EXACT_PSNR = float(10 * np.log10(12 * 255.0**2))  # 8-bit rounding noise (variance 1/12 level^2)


def _mean_psnr(*args, **kwargs) -> float:
    return float(jnp.mean(jnp.minimum(psnr(*args, **kwargs), EXACT_PSNR)))


def scores(
    restored: np.ndarray, clean: np.ndarray, mask: np.ndarray, degradation: Degradation
) -> dict[str, float]:
    """Mean metrics of [0, 1] NHWC images, rounded to 8 bits first."""
    restored = np.round(np.clip(restored, 0, 1) * 255) / 255
    clean_j, restored_j = jnp.asarray(clean, jnp.float32), jnp.asarray(restored, jnp.float32)
    result = {
        "psnr": _mean_psnr(restored_j, clean_j),
        "ssim": float(jnp.mean(ssim(restored_j, clean_j))),
    }
    if degradation.is_inpainting:
        result["psnr_hole"] = _mean_psnr(restored_j, clean_j, mask=jnp.asarray(mask))
    if degradation.name == "downsample" and clean.shape[-1] == 3:
        border = degradation.scale_factor
        result["psnr_y"] = _mean_psnr(restored_j, clean_j, crop_border=border, y_channel=True)
        result["ssim_y"] = float(
            jnp.mean(ssim(restored_j, clean_j, crop_border=border, y_channel=True))
        )
    return result


def digits_kid(outputs: dict[str, np.ndarray], clean: np.ndarray, seed: int) -> dict[str, float]:
    """digits-KID (the shipped classifier's features) of each method's [0, 1] outputs against the
    clean crops: how digit-like the restorations are, beside how close (PSNR) they are."""
    from jaxgan.metrics.digits import DigitsClassifier
    from jaxgan.metrics.kid import kernel_inception_distance

    classifier = DigitsClassifier()
    reference = classifier(np.asarray(clean * 2 - 1, np.float32))
    return {
        name: kernel_inception_distance(
            classifier(np.asarray(np.clip(output, 0, 1) * 2 - 1, np.float32)), reference, seed=seed
        )[0]
        for name, output in outputs.items()
    }
