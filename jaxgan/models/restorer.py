"""The restoration models R (the seed's sections 2.2 and 3.2) in Flax, NHWC: `ResidualRestorer` (the
default) and the original encoder-decoder `Restorer`.

The seed describes R only in words. `Restorer`, the first reading (docs/architecture.md): a
DCGAN-style encoder (stride-2 Conv + BatchNorm + LeakyReLU 0.2) down to a 4x4 bottleneck, a decoder
of stride-2 ConvTranspose + BatchNorm + ReLU back to full size, and a last ConvTranspose with Tanh.
The input is the damaged image and a 1-channel mask (1 = missing pixel); with `skips`, encoder
features are concatenated into the decoder at equal resolution (U-Net style).
"""

from __future__ import annotations

import functools

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


def pixel_unshuffle(x: jax.Array, factor: int) -> jax.Array:
    """(N, H, W, C) -> (N, H/f, W/f, C*f*f), channel c*f*f + i*f + j holding offset (i, j): the
    order of `torch.nn.PixelUnshuffle`, so weights convert by a plain transpose."""
    count, height, width, channels = x.shape
    if height % factor or width % factor:
        raise ValueError(f"a {height}x{width} input is not divisible by the unshuffle {factor}")
    x = x.reshape(count, height // factor, factor, width // factor, factor, channels)
    x = x.transpose(0, 1, 3, 5, 2, 4)  # (N, H/f, W/f, C, f, f)
    return x.reshape(count, height // factor, width // factor, channels * factor * factor)


RESIDUAL_BLOCK_SCALE = 0.1  # the second convolution of each block starts at 0.1 x PyTorch's init


class ResidualRestorer(nn.Module):
    """(images, mask (1 = missing)) -> images + a learned correction: the default restorer.

    The input is the classical answer (the noisy image, the bicubic upsampling, a harmonic fill of
    the holes); the network only predicts what to change, so with its zero-initialised last layer
    it starts exactly at that baseline. Still the seed's R: convolutional feature extraction on a
    pixel-unshuffled grid (stem and residual blocks, as DnCNN, FFDNet and EDSR), a transposed
    convolution back to full resolution, and a convolution to pixel values, which also sees the
    input itself (a full-resolution skip). Any input whose sides divide by `unshuffle` works.
    """

    nc: int = 3
    width: int = 64
    blocks: int = 4
    unshuffle: int = 2  # 1, 2 or 4: the feature grid is the image's side / unshuffle
    batchnorm: bool = False
    image_size: int = 64  # the training crop side (the tile side at restore time)
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, images: jax.Array, mask: jax.Array, train: bool = True) -> jax.Array:
        kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        conv = functools.partial(
            Conv,
            stride=1,
            padding=1,
            kernel_size=3,
            init="torch",
            precision=self.precision,
            **kwargs,
        )
        factor, images = self.unshuffle, images.astype(self.dtype)
        inputs = jnp.concatenate([images, mask.astype(self.dtype)], axis=-1)  # (N, S, S, nc+1)
        x = conv(self.width, name="stem")(pixel_unshuffle(inputs, factor))  # (N, S/f, S/f, width)
        for i in range(self.blocks):
            y = conv(self.width, name=f"block_{i}_conv_0")(x)  # (N, S/f, S/f, width)
            if self.batchnorm:
                y = BatchNorm(name=f"block_{i}_bn_0", **kwargs)(y, train)
            y = conv(self.width, init_scale=RESIDUAL_BLOCK_SCALE, name=f"block_{i}_conv_1")(
                nn.relu(y)
            )
            if self.batchnorm:
                y = BatchNorm(name=f"block_{i}_bn_1", **kwargs)(y, train)
            x = x + y  # (N, S/f, S/f, width)
        if factor > 1:
            upsample = ConvTranspose(
                self.width,
                factor,
                0,
                kernel_size=factor,
                init="torch",
                name="upsample",
                precision=self.precision,
                **kwargs,
            )
            x = nn.relu(upsample(x))  # (N, S, S, width)
        x = jnp.concatenate([x, inputs], axis=-1)  # (N, S, S, width + nc + 1): full-res skip
        correction = Conv(
            self.nc,
            1,
            1,
            kernel_size=3,
            init="zeros",
            name="head",
            precision=self.precision,
            **kwargs,
        )(x)  # (N, S, S, nc)
        return images + correction
