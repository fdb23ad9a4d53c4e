"""Classical restoration baselines, each (damaged, mask, low-resolution) -> restored, float [0, 1]
NHWC.

Inpainting: scikit-image's biharmonic, OpenCV's Telea and Navier-Stokes (radius 3). Denoising:
scikit-image's non-local means with h = strength x sigma (NLM_STRENGTH: the best strength at each
sigma on the validation crops; docs/results.md) and BM3D, both given the true sigma.
Super-resolution: bicubic (the damaged input itself, reported as such) and Lanczos-3.
OpenCV and BM3D are optional (`pip install jaxgan[classical]`; BM3D's licence is non-commercial): a
baseline whose package is missing is reported as skipped, with the reason.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from jaxgan.tasks.restore.degradations import Degradation, upsample

# h / sigma of non-local means by (channels, sigma): the best of 0.3-1.0 on 60 validation crops at
# sigma 15, 25 and 50 (docs/results.md); other sigmas take the nearest one's.
NLM_STRENGTH = {
    3: {15.0: 0.6, 25.0: 0.5, 50.0: 0.4},
    1: {15.0: 0.8, 25.0: 0.7, 50.0: 0.7},
}


def nlm_strength(sigma: float, channels: int = 3) -> float:
    table = NLM_STRENGTH[3 if channels == 3 else 1]
    return table[min(table, key=lambda known: abs(known - sigma))]


INPAINT_RADIUS = 3


def _per_image(function: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def run(damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.stack([function(d, m) for d, m in zip(damaged, mask)]).astype(np.float32)

    return run


def biharmonic(damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    return _per_image(lambda d, m: inpaint_biharmonic(d, m[..., 0] > 0.5, channel_axis=-1))(
        damaged, mask
    )


def opencv_inpaint(method: str):
    def run(damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import cv2

        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS

        def one(image, hole):
            pixels = np.round(image * 255).astype(np.uint8)
            if pixels.shape[-1] == 3:
                pixels = np.ascontiguousarray(pixels[..., ::-1])  # OpenCV is BGR
            out = cv2.inpaint(pixels, (hole[..., 0] > 0.5).astype(np.uint8), INPAINT_RADIUS, flag)
            out = out.reshape(image.shape)
            return (out[..., ::-1] if out.shape[-1] == 3 else out) / 255.0

        return _per_image(one)(damaged, mask)

    return run


def nl_means(sigma: float, strength: float | None = None):
    """scikit-image's fast non-local means (5x5 patches, 13x13 search) with h = strength x sigma
    (default `nlm_strength(sigma, channels)`)."""

    def one(image, _):
        from skimage.restoration import denoise_nl_means

        h = nlm_strength(sigma, image.shape[-1]) if strength is None else strength
        return denoise_nl_means(
            image,
            h=h * sigma / 255,
            sigma=sigma / 255,
            patch_size=5,
            patch_distance=6,
            fast_mode=True,
            channel_axis=-1,
        ).reshape(image.shape)  # one channel comes back without its axis

    return _per_image(one)


def bm3d_denoise(sigma: float):
    def one(image, _):
        import bm3d

        if image.shape[-1] == 3:
            return bm3d.bm3d_rgb(image, sigma_psd=sigma / 255)
        return np.stack(
            [bm3d.bm3d(image[..., c], sigma_psd=sigma / 255) for c in range(image.shape[-1])], -1
        )

    return _per_image(one)


def lanczos(low: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos-3 upsampling of low-resolution [0, 1] images to `size`."""
    return (np.asarray(upsample(jnp.asarray(low) * 2 - 1, size, "lanczos3")) + 1) / 2


def available(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def baselines(
    degradation: Degradation, strength: float | None = None, channels: int = 3
) -> dict[str, tuple[Callable | None, str]]:
    """{name: (function or None, why skipped)} of the classical methods for a degradation; functions
    take (damaged, mask, low) in [0, 1] (low: the low-resolution images, super-resolution only)."""

    def missing(package: str, extra: str) -> str:
        return f"needs the optional package {package} ({extra})"

    opencv = "opencv-python-headless: pip install 'jaxgan[classical]'"
    if degradation.is_inpainting:
        return {
            "biharmonic (scikit-image)": (lambda d, m, low: biharmonic(d, m), ""),
            "Telea (OpenCV)": (
                (lambda d, m, low: opencv_inpaint("telea")(d, m)) if available("cv2") else None,
                missing("cv2", opencv),
            ),
            "Navier-Stokes (OpenCV)": (
                (lambda d, m, low: opencv_inpaint("ns")(d, m)) if available("cv2") else None,
                missing("cv2", opencv),
            ),
        }
    if degradation.name == "noise":
        sigma = degradation.noise_sigma
        strength = nlm_strength(sigma, channels) if strength is None else strength
        return {
            f"non-local means (h = {strength:g} sigma)": (
                lambda d, m, low: nl_means(sigma, strength)(d, m),
                "",
            ),
            "BM3D": (
                (lambda d, m, low: bm3d_denoise(sigma)(d, m)) if available("bm3d") else None,
                missing("bm3d", "non-commercial licence: pip install bm3d"),
            ),
        }
    if degradation.name == "downsample":
        return {"Lanczos-3": (lambda d, m, low: lanczos(low, d.shape[1:3]), "")}
    return {}
