"""2x super-resolution: 32x32 (antialiased bicubic, 8-bit) -> 64x64; the shipped `sr2x` model.

As restore_sr4x64, on a grid of half the image's side (the low-resolution grid).
"""

from jaxgan.config import Config
from jaxgan.tasks.restore.recipe import regression_recipe


def get_config() -> Config:
    return Config(
        **regression_recipe(num_steps=5_000),
        nc=3,
        degradation="downsample",
        scale_factor=2,
        downsampler="bicubic",
        restorer_blocks=4,
        restorer_unshuffle=2,
    )
