"""Blind grayscale (nc=1) denoising, sigma 0-50, evaluated at sigma 25: the shipped
`denoise-gray` model, for scans and single bands (a 1-channel restorer restores each band of an
N-band image on its own).

The built-in photos are read as BT.601 luma, with the grayscale photographs added; point
`--config.data` at a folder of scans (8- or 16-bit PNG/TIFF) to train on your own. The recipe is
`jaxgan.tasks.restore.recipe`'s.
"""

from jaxgan.config import Config
from jaxgan.tasks.restore.recipe import regression_recipe


def get_config() -> Config:
    return Config(
        **regression_recipe(num_steps=6_000),
        nc=1,
        degradation="noise",
        noise_sigma=25.0,
        noise_sigma_max=50.0,
        restorer_blocks=4,
        restorer_unshuffle=2,
    )
