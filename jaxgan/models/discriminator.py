"""The DCGAN discriminator D (the seed's section 4.2) in Flax, NHWC; it returns logits.

The seed's final Sigmoid moves into the loss (BCE with logits): `sigmoid(D(x))` is the seed's
output.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.generator import class_labels, num_upsamplings
from jaxgan.models.layers import DEFAULT_PRECISION, BatchNorm, Conv, Dtype


class Discriminator(nn.Module):
    """images (N, S, S, nc) -> logits (N,); at S=64, nc=3 exactly the seed's D.

    `conv_0` + LeakyReLU 0.2, then `conv_i` + `bn_i` + LeakyReLU with widths ndf * 2**i down to 4x4,
    then a 4x4 valid convolution to one logit. `spectral_norm` normalises every convolution
    (`layers._Convolution`); `batchnorm=False` drops the `bn_i` layers. With `num_classes`, a
    projection discriminator (Miyato & Koyama 2018): the logit gains <embed(y), sum over positions
    of the 4x4 features>, `embed` a learned (num_classes, ndf * 2**(L-1)) table, init N(0, 0.02).
    """

    ndf: int = 64
    nc: int = 3
    image_size: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: str = (
        DEFAULT_PRECISION  # of every convolution and product: "default", "high" or "highest"
    )
    spectral_norm: bool = False
    batchnorm: bool = True
    num_classes: int = 0

    @nn.compact
    def __call__(
        self, images: jax.Array, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        layers = num_upsamplings(self.image_size)
        kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        conv_kwargs = dict(kwargs, precision=self.precision, spectral_norm=self.spectral_norm)
        x = Conv(self.ndf, 2, 1, name="conv_0", **conv_kwargs)(images)
        x = nn.leaky_relu(x, 0.2)  # (N, S/2, S/2, ndf)
        for i in range(1, layers):
            x = Conv(self.ndf * 2**i, 2, 1, name=f"conv_{i}", **conv_kwargs)(x)
            if self.batchnorm:
                x = BatchNorm(name=f"bn_{i}", **kwargs)(x, train)
            x = nn.leaky_relu(x, 0.2)
            # (N, S/2**(i+1), S/2**(i+1), ndf*2**i): at S=64 (N, 16, 16, ndf*2) ... (N, 4, 4, ndf*8)
        features = x
        x = Conv(1, 1, 0, name=f"conv_{layers}", **conv_kwargs)(x)  # (N, 1, 1, 1)
        logits = x.reshape(x.shape[0]).astype(jnp.promote_types(self.dtype, jnp.float32))
        if not self.num_classes:
            return logits
        embedding = nn.Embed(
            self.num_classes,
            features.shape[-1],
            embedding_init=nn.initializers.normal(0.02),
            name="embed",
            **kwargs,
        )(class_labels(labels, self.num_classes))  # (N, ndf*2**(L-1))
        projection = jnp.sum(embedding * jnp.sum(features, axis=(1, 2)), axis=-1)  # (N,)
        return logits + projection.astype(logits.dtype)
