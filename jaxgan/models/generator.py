"""The DCGAN generator G (the seed's section 4.1) in Flax, NHWC, for image sizes 32, 64 and 128."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models.layers import DEFAULT_PRECISION, BatchNorm, ConvTranspose, Dtype


def num_upsamplings(image_size: int) -> int:
    """Stride-2 layers after the 4x4 start: one more per doubling (the DCGAN convention)."""
    if image_size not in (32, 64, 128):
        raise ValueError(f"image_size must be 32, 64 or 128, got {image_size}")
    return image_size.bit_length() - 3


def class_inputs(num_classes: int, class_conditioning: str) -> tuple[bool, bool]:
    """(class embedding joined to z, conditional BatchNorm) of a G's `class_conditioning`."""
    return (
        bool(num_classes) and class_conditioning in ("embedding", "both"),
        bool(num_classes) and class_conditioning in ("batchnorm", "both"),
    )


def class_labels(labels: jax.Array | None, num_classes: int) -> jax.Array:
    """A conditional model's labels (N,), which it cannot run without."""
    if labels is None:
        raise ValueError(f"a class-conditional model ({num_classes} classes) needs labels")
    return labels.astype(jnp.int32)


class Generator(nn.Module):
    """z (N, nz) -> images (N, S, S, nc) in [-1, 1]; at S=64, nc=3 exactly the seed's G.

    Layer i is `conv_i` (+ `bn_i`, ReLU); widths halve from ngf * 2**(L-1) to ngf, the last layer
    maps to nc and ends in Tanh. `spectral_norm` normalises every transposed convolution, as
    PyTorch's spectral_norm does (its dim 1, the output channels). With `num_classes`, a learned
    class embedding `embed` (N(0, 1), as torch's nn.Embedding) of size nz joins the latent: conv_0
    sees (N, 1, 1, 2 nz). `class_conditioning` "batchnorm" instead gives every `bn_i` per-class
    scale and bias tables and conv_0 the latent alone, so that G's first features vary only with z
    (the joined embedding lets G ignore z within a class: docs/results.md); "both" does both.
    """

    nz: int = 100
    ngf: int = 64
    nc: int = 3
    image_size: int = 64
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: str = (
        DEFAULT_PRECISION  # of every convolution and product: "default", "high" or "highest"
    )
    spectral_norm: bool = False
    num_classes: int = 0
    class_conditioning: str = "embedding"  # with num_classes: "embedding", "batchnorm" or "both"

    @nn.compact
    def __call__(
        self, z: jax.Array, labels: jax.Array | None = None, train: bool = True
    ) -> jax.Array:
        layers = num_upsamplings(self.image_size)
        kwargs = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        conv_kwargs = dict(kwargs, precision=self.precision, spectral_norm=self.spectral_norm)
        x = z.reshape(z.shape[0], 1, 1, self.nz)  # (N, 1, 1, nz)
        classes = class_labels(labels, self.num_classes) if self.num_classes else None
        joined, conditional_batchnorm = class_inputs(self.num_classes, self.class_conditioning)
        norm_kwargs = dict(kwargs, num_classes=self.num_classes if conditional_batchnorm else 0)
        if joined:
            embedding = nn.Embed(
                self.num_classes,
                self.nz,
                embedding_init=nn.initializers.normal(1.0),
                name="embed",
                **kwargs,
            )(classes)
            x = jnp.concatenate([x, embedding.reshape(x.shape)], axis=-1)  # (N, 1, 1, 2 nz)
        x = ConvTranspose(self.ngf * 2 ** (layers - 1), 1, 0, name="conv_0", **conv_kwargs)(x)
        x = nn.relu(BatchNorm(name="bn_0", **norm_kwargs)(x, train, classes))
        # (N, 4, 4, ngf*8) at S=64
        for i in range(1, layers):
            x = ConvTranspose(
                self.ngf * 2 ** (layers - 1 - i), 2, 1, name=f"conv_{i}", **conv_kwargs
            )(x)
            x = nn.relu(BatchNorm(name=f"bn_{i}", **norm_kwargs)(x, train, classes))
            # (N, 4*2**i, 4*2**i, ngf*2**(L-1-i)): at S=64 (N, 8, 8, ngf*4) ... (N, 32, 32, ngf)
        x = ConvTranspose(self.nc, 2, 1, name=f"conv_{layers}", **conv_kwargs)(x)  # (N, S, S, nc)
        return jnp.tanh(x)
