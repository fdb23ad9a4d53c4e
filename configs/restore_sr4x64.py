"""4x super-resolution: 16x16 (antialiased bicubic, 8-bit) -> 64x64; the shipped `sr4x` model.

The restorer sees the bicubic upsampling of the low-resolution image and predicts its correction
on the low-resolution grid (unshuffle 4); at step 0 it is exactly bicubic. The regression recipe
is `jaxgan.tasks.restore.recipe`'s.
"""

from jaxgan.config import Config
from jaxgan.tasks.restore.recipe import regression_recipe


def get_config() -> Config:
    return Config(
        **regression_recipe(num_steps=5_000),
        nc=3,
        degradation="downsample",
        scale_factor=4,
        downsampler="bicubic",
        restorer_blocks=8,
        restorer_unshuffle=4,
    )
