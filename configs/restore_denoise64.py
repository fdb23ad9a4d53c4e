"""Blind colour denoising: one restorer for Gaussian noise of any sigma in 0-50 (on the 0..255
scale), evaluated at sigma 25; the shipped `denoise-colour` model (docs/restoration.md).

The residual restorer (input + a correction, zero-initialised last layer: it starts at the noisy
input) with the regression recipe: L1, Adam 1e-3 with beta1 0.9, warm-up and cosine decay, 8-fold
flips and rotations, fresh crops and noise every step, no discriminator (lambda_adv 0).
"""

from jaxgan.config import Config
from jaxgan.tasks.restore.recipe import regression_recipe


def get_config() -> Config:
    return Config(
        **regression_recipe(num_steps=8_000),
        nc=3,
        degradation="noise",
        noise_sigma=25.0,
        noise_sigma_max=50.0,
        restorer_blocks=4,
        restorer_unshuffle=2,
    )
