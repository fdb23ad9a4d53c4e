"""The restoration model R (the seed's sections 2.2 and 3.2) in Flax, NHWC.

The seed describes R only in words; jaxgan makes it concrete (docs/architecture.md): a DCGAN-style
encoder (stride-2 Conv + BatchNorm + LeakyReLU 0.2) down to a 4x4 bottleneck, a decoder of stride-2
ConvTranspose + BatchNorm + ReLU back to full size, and a last ConvTranspose with Tanh. The input is
the damaged image and a 1-channel mask (1 = missing pixel); with `skips`, encoder features are
concatenated into the decoder at equal resolution (U-Net style).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.generator import num_upsamplings
from jaxgan.models.layers import DEFAULT_PRECISION, BatchNorm, Conv, ConvTranspose, Dtype


class Restorer(nn.Module):
    """(images (N, S, S, nc), mask (N, S, S, 1)) -> restored images (N, S, S, nc) in [-1, 1]."""

    nc: int = 3
    width: int = 64
    image_size: int = 64
    skips: bool = False
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: str = (
        DEFAULT_PRECISION  # of every convolution and product: "default", "high" or "highest"
    )

    @nn.compact
    def __call__(self, images: jax.Array, mask: jax.Array, train: bool = True) -> jax.Array:
        layers = num_upsamplings(self.image_size)
        kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        conv_kwargs = dict(kwargs, precision=self.precision)
        x = jnp.concatenate([images, mask.astype(images.dtype)], axis=-1)  # (N, S, S, nc+1)
        x = nn.leaky_relu(Conv(self.width, 2, 1, name="enc_conv_0", **conv_kwargs)(x), 0.2)
        features = [x]  # (N, S/2, S/2, width)
        for i in range(1, layers):
            x = Conv(self.width * 2**i, 2, 1, name=f"enc_conv_{i}", **conv_kwargs)(x)
            x = nn.leaky_relu(BatchNorm(name=f"enc_bn_{i}", **kwargs)(x, train), 0.2)
            features.append(
                x
            )  # (N, S/2**(i+1), S/2**(i+1), width*2**i); last (N, 4, 4, width*2**(L-1))
        for j in range(layers - 1):
            x = ConvTranspose(
                self.width * 2 ** (layers - 2 - j), 2, 1, name=f"dec_conv_{j}", **conv_kwargs
            )(x)
            x = nn.relu(BatchNorm(name=f"dec_bn_{j}", **kwargs)(x, train))
            # (N, 8*2**j, 8*2**j, width*2**(L-2-j)):
            # at S=64 (N, 8, 8, width*4) ... (N, 32, 32, width)
            if self.skips:
                x = jnp.concatenate([x, features[layers - 2 - j]], axis=-1)  # channels doubled
        x = ConvTranspose(self.nc, 2, 1, name=f"dec_conv_{layers - 1}", **conv_kwargs)(
            x
        )  # (N, S, S, nc)
        return jnp.tanh(x)
