"""pytorch-fid's FID Inception-v3 in Flax (NHWC), and `InceptionFeatures`: images -> pool features,
logits.

The network is the TensorFlow 2015-12-05 Inception graph that FID and Inception Score are defined
on, as pytorch-fid rebuilds it: torchvision's Inception-v3 with the FID blocks (average pools that
skip the padding, a max pool in the last block), 1008 classes. Preprocessing is pytorch-fid's:
pixels to [0, 1], bilinear resize to 299x299 (half-pixel centres, no antialiasing), then to [-1, 1].
Convolutions and the last layer run at `precision`, by default "highest": full float32 (no TF32 or
bfloat16 passes on GPUs or TPUs), as pytorch-fid's numbers need.
"""

from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.models.layers import DEFAULT_PRECISION, lax_precision

INPUT_SIZE = 299
FEATURES = 2048
CLASSES = 1008
BN_EPSILON = 1e-3  # torchvision's BasicConv2d


class BasicConv(nn.Module):
    """Convolution (no bias), BatchNorm with running statistics (eps 1e-3), ReLU: torchvision's
    BasicConv2d."""

    features: int
    kernel_size: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)
    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.he_normal(), shape)  # HWIO
        scale = self.param("scale", nn.initializers.ones, (self.features,))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        mean = self.variable("batch_stats", "mean", jnp.zeros, (self.features,)).value
        var = self.variable("batch_stats", "var", jnp.ones, (self.features,)).value
        pad_h, pad_w = self.padding
        x = x.astype(kernel.dtype)
        y = lax.conv_general_dilated(
            x,
            kernel,
            (self.stride, self.stride),
            [(pad_h, pad_h), (pad_w, pad_w)],
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=lax_precision(self.precision),
        )
        return nn.relu((y - mean) * (scale * lax.rsqrt(var + BN_EPSILON)) + bias)


def average_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3, stride 1, padding 1, averaging only the pixels inside the image (TensorFlow's SAME
    pooling)."""
    return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def max_pool_3x3(x: jax.Array, stride: int) -> jax.Array:
    padding = ((1, 1), (1, 1)) if stride == 1 else "VALID"
    return nn.max_pool(x, (3, 3), (stride, stride), padding)


class InceptionA(nn.Module):
    """Mixed_5b..5d: 1x1, 5x5, double 3x3 and pooled branches (FID: padding-free average pool)."""

    pool_features: int
    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv, precision=self.precision)
        branch1x1 = conv(64, (1, 1), name="branch1x1")(x)
        branch5x5 = conv(48, (1, 1), name="branch5x5_1")(x)
        branch5x5 = conv(64, (5, 5), padding=(2, 2), name="branch5x5_2")(branch5x5)
        double = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        double = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(double)
        double = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(double)
        pool = conv(self.pool_features, (1, 1), name="branch_pool")(average_pool_3x3(x))
        return jnp.concatenate(
            [branch1x1, branch5x5, double, pool], axis=-1
        )  # (N, 35, 35, 224 + pool)


class InceptionB(nn.Module):
    """Mixed_6a: the 35 -> 17 reduction."""

    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv, precision=self.precision)
        branch3x3 = conv(384, (3, 3), stride=2, name="branch3x3")(x)
        double = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        double = conv(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(double)
        double = conv(96, (3, 3), stride=2, name="branch3x3dbl_3")(double)
        return jnp.concatenate([branch3x3, double, max_pool_3x3(x, 2)], axis=-1)  # (N, 17, 17, 768)


class InceptionC(nn.Module):
    """Mixed_6b..6e: factorised 7x7 branches (FID: padding-free average pool)."""

    channels_7x7: int
    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv, precision=self.precision)
        width = self.channels_7x7
        branch1x1 = conv(192, (1, 1), name="branch1x1")(x)
        branch7x7 = conv(width, (1, 1), name="branch7x7_1")(x)
        branch7x7 = conv(width, (1, 7), padding=(0, 3), name="branch7x7_2")(branch7x7)
        branch7x7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(branch7x7)
        double = conv(width, (1, 1), name="branch7x7dbl_1")(x)
        for i, (size, features) in enumerate(
            [((7, 1), width), ((1, 7), width), ((7, 1), width), ((1, 7), 192)]
        ):
            padding = (size[0] // 2, size[1] // 2)
            double = conv(features, size, padding=padding, name=f"branch7x7dbl_{i + 2}")(double)
        pool = conv(192, (1, 1), name="branch_pool")(average_pool_3x3(x))
        return jnp.concatenate([branch1x1, branch7x7, double, pool], axis=-1)  # (N, 17, 17, 768)


class InceptionD(nn.Module):
    """Mixed_7a: the 17 -> 8 reduction."""

    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv, precision=self.precision)
        branch3x3 = conv(192, (1, 1), name="branch3x3_1")(x)
        branch3x3 = conv(320, (3, 3), stride=2, name="branch3x3_2")(branch3x3)
        branch7x7 = conv(192, (1, 1), name="branch7x7x3_1")(x)
        branch7x7 = conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(branch7x7)
        branch7x7 = conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(branch7x7)
        branch7x7 = conv(192, (3, 3), stride=2, name="branch7x7x3_4")(branch7x7)
        return jnp.concatenate(
            [branch3x3, branch7x7, max_pool_3x3(x, 2)], axis=-1
        )  # (N, 8, 8, 1280)


class InceptionE(nn.Module):
    """Mixed_7b, 7c: expanded 3x3 branches. FID: 7b averages without padding, 7c max-pools (as the
    TF graph)."""

    pool: str  # "average" or "max"
    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv, precision=self.precision)
        branch1x1 = conv(320, (1, 1), name="branch1x1")(x)
        branch3x3 = conv(384, (1, 1), name="branch3x3_1")(x)
        branch3x3 = jnp.concatenate(
            [
                conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(branch3x3),
                conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(branch3x3),
            ],
            -1,
        )
        double = conv(448, (1, 1), name="branch3x3dbl_1")(x)
        double = conv(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(double)
        double = jnp.concatenate(
            [
                conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(double),
                conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(double),
            ],
            -1,
        )
        pooled = average_pool_3x3(x) if self.pool == "average" else max_pool_3x3(x, 1)
        pool = conv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([branch1x1, branch3x3, double, pool], axis=-1)  # (N, 8, 8, 2048)


class FIDInception(nn.Module):
    """(N, 299, 299, 3) in [-1, 1] -> (pool features (N, 2048), logits (N, 1008) without the final
    bias).

    Module names are the PyTorch attribute names, so the conversion table is a renaming.
    """

    precision: str = DEFAULT_PRECISION

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        conv = functools.partial(BasicConv, precision=self.precision)
        x = conv(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)  # (N, 149, 149, 32)
        x = conv(32, (3, 3), name="Conv2d_2a_3x3")(x)  # (N, 147, 147, 32)
        x = conv(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)  # (N, 147, 147, 64)
        x = max_pool_3x3(x, 2)  # (N, 73, 73, 64)
        x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)  # (N, 73, 73, 80)
        x = conv(192, (3, 3), name="Conv2d_4a_3x3")(x)  # (N, 71, 71, 192)
        x = max_pool_3x3(x, 2)  # (N, 35, 35, 192)
        x = InceptionA(32, precision=self.precision, name="Mixed_5b")(x)  # (N, 35, 35, 256)
        x = InceptionA(64, precision=self.precision, name="Mixed_5c")(x)  # (N, 35, 35, 288)
        x = InceptionA(64, precision=self.precision, name="Mixed_5d")(x)  # (N, 35, 35, 288)
        x = InceptionB(precision=self.precision, name="Mixed_6a")(x)  # (N, 17, 17, 768)
        for name, width in (
            ("Mixed_6b", 128),
            ("Mixed_6c", 160),
            ("Mixed_6d", 160),
            ("Mixed_6e", 192),
        ):
            x = InceptionC(width, precision=self.precision, name=name)(x)  # (N, 17, 17, 768)
        x = InceptionD(precision=self.precision, name="Mixed_7a")(x)  # (N, 8, 8, 1280)
        x = InceptionE("average", precision=self.precision, name="Mixed_7b")(x)  # (N, 8, 8, 2048)
        x = InceptionE("max", precision=self.precision, name="Mixed_7c")(x)  # (N, 8, 8, 2048)
        features = x.mean(axis=(1, 2))  # (N, 2048): pytorch-fid's pool3
        fc = nn.Dense(CLASSES, use_bias=False, precision=lax_precision(self.precision), name="fc")
        logits = fc(features)  # (N, 1008)
        return features, logits


def resize_indices(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows (lower, upper) and the upper row's weight of PyTorch's bilinear resize.

    `align_corners=False`: half-pixel centres, source = (i + 0.5) * in / out - 0.5 clamped at 0, in
    float32 with one rounding (the fused multiply-add of PyTorch's compiled CPU and CUDA kernels);
    no antialiasing, also when shrinking.
    """
    scale = np.float64(np.float32(size_in) / np.float32(size_out))
    centres = np.arange(size_out, dtype=np.float64) + 0.5
    source = np.maximum(
        (scale * centres - 0.5).astype(np.float32), 0
    )  # exact product, one rounding
    lower = np.minimum(source.astype(np.int64), size_in - 1)
    upper = np.minimum(lower + 1, size_in - 1)
    return lower, upper, (source - lower).astype(np.float32)


def resize_bilinear(images: jax.Array, height: int, width: int) -> jax.Array:
    """NHWC float images -> (N, height, width, C):
    `F.interpolate(mode="bilinear", align_corners=False)`."""
    if images.shape[1:3] == (height, width):
        return images
    lower, upper, weight = resize_indices(images.shape[2], width)
    weight = jnp.asarray(weight)[:, None]  # (width, 1)
    images = images[:, :, lower] * (1 - weight) + images[:, :, upper] * weight  # (N, H, width, C)
    lower, upper, weight = resize_indices(images.shape[1], height)
    weight = jnp.asarray(weight)[:, None, None]  # (height, 1, 1)
    return images[:, lower] * (1 - weight) + images[:, upper] * weight  # (N, height, width, C)


def to_unit_range(images: jax.Array) -> jax.Array:
    """uint8 0..255 -> [0, 1] (torchvision's ToTensor); float in jaxgan's [-1, 1] -> [0, 1]."""
    if images.dtype == jnp.uint8:
        return images.astype(jnp.float32) / 255
    return (images.astype(jnp.float32) + 1) / 2


@jax.jit
def preprocess(images: jax.Array) -> jax.Array:
    """NHWC images (uint8 or [-1, 1] float; 1 or 3 channels; any size) -> (N, 299, 299, 3) as
    pytorch-fid."""
    unit = to_unit_range(images)
    if unit.shape[-1] == 1:  # grayscale, replicated as PIL's convert("RGB") does
        unit = jnp.repeat(unit, 3, axis=-1)
    return 2 * resize_bilinear(unit, INPUT_SIZE, INPUT_SIZE) - 1


class InceptionFeatures:
    """`InceptionFeatures(weights_path)(images)` -> (N, 2048) float32 pool features, as
    pytorch-fid's.

    `weights_path` is pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or a .safetensors copy);
    None reads $JAXGAN_INCEPTION_WEIGHTS. Images are NHWC, uint8 0..255 or float in [-1, 1], 1 or 3
    channels, any size and aspect. They run in chunks of `batch_size` (one compiled shape), at
    `precision` ("highest", the default, for pytorch-fid's numbers on GPUs and TPUs too).
    """

    def __init__(
        self,
        weights_path: str | os.PathLike | None = None,
        batch_size: int = 50,
        precision: str = DEFAULT_PRECISION,
    ):
        from jaxgan.metrics.inception_convert import load_inception_variables, resolve_weights_path

        lax_precision(precision)  # an unknown name fails here, not at the first batch
        self.weights_path = resolve_weights_path(weights_path)
        self.variables = jax.device_put(load_inception_variables(self.weights_path))
        self.batch_size = batch_size
        self.precision = precision

    def __call__(self, images: np.ndarray | jax.Array) -> np.ndarray:
        return self.features_and_logits(images)[0]

    def features_and_logits(self, images: np.ndarray | jax.Array) -> tuple[np.ndarray, np.ndarray]:
        """(features (N, 2048), logits (N, 1008) without the last bias, for Inception Score),
        float32."""
        from jaxgan.metrics.batches import in_fixed_batches

        check_images(images)
        network = compiled_network(self.precision)
        return in_fixed_batches(
            lambda chunk: network(self.variables, preprocess(chunk)), images, self.batch_size
        )


@functools.cache
def compiled_network(precision: str = DEFAULT_PRECISION):
    """`(variables, (N, 299, 299, 3) in [-1, 1]) -> (features, logits)`, one jitted function per
    precision."""
    return jax.jit(FIDInception(precision).apply)


def check_images(images) -> None:
    """NHWC with 1 or 3 channels, uint8 or floating point; the error says what was given."""
    if getattr(images, "ndim", 0) != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"images must be NHWC with 1 or 3 channels, got shape {getattr(images, 'shape', None)}"
        )
    dtype = np.dtype(images.dtype)
    if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
        raise ValueError(f"images must be uint8 (0..255) or float in [-1, 1], got {dtype}")


@functools.lru_cache(maxsize=1)
def variable_shapes() -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flat {path: shape} of the network's variables, from the module itself (no computation)."""
    from flax import traverse_util

    shapes = jax.eval_shape(
        FIDInception().init, jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3))
    )
    return {path: leaf.shape for path, leaf in traverse_util.flatten_dict(shapes).items()}
