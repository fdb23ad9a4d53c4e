"""PyTorch-compatible layers in NHWC: convolutions, a fast transposed convolution, BatchNorm.

Kernels are stored so that conversion is a pure transpose of PyTorch's weights: `Conv` keeps HWIO
(PyTorch OIHW), `ConvTranspose` keeps (kh, kw, in, out) (PyTorch (in, out, kh, kw)), unflipped.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.config import PRECISIONS

DIMENSIONS = ("NHWC", "HWIO", "NHWC")
Dtype = Any
DEFAULT_PRECISION = (
    "highest"  # full float32 on every backend: PyTorch parity (docs/scaling.md, "Precision")
)


def lax_precision(name: str) -> lax.Precision:
    """A precision name ("default", "high", "highest"; the config field `precision`) ->
    `lax.Precision`.

    It is passed to every convolution and matrix product, so float32 means float32 on GPUs and TPUs
    too (their DEFAULT is TF32 or one bfloat16 pass); CPUs compute float32 in full whatever the
    value.
    """
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    return lax.Precision(name)


def dcgan_normal(mean: float = 0.0, stddev: float = 0.02):
    """DCGAN's initialiser N(mean, stddev) (pytorch/examples' `weights_init`)."""

    def init(key, shape, dtype=jnp.float32):
        return mean + stddev * jax.random.normal(key, shape, dtype)

    return init


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    padding: int,
    precision: lax.Precision | None = None,
) -> jax.Array:
    """Cross-correlation as `torch.nn.functional.conv2d` computes it; `kernel` is HWIO."""
    return lax.conv_general_dilated(
        x,
        kernel,
        (stride, stride),
        [(padding, padding)] * 2,
        dimension_numbers=DIMENSIONS,
        precision=precision,
    )


def _conv_transpose_dilated(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    padding: int,
    precision: lax.Precision | None = None,
) -> jax.Array:
    """The textbook form: a stride-1 convolution of the zero-dilated input with the flipped
    kernel."""
    size = kernel.shape[0]
    edge = size - 1 - padding
    return lax.conv_general_dilated(
        x,
        kernel[::-1, ::-1],
        (1, 1),
        [(edge, edge)] * 2,
        lhs_dilation=(stride, stride),
        dimension_numbers=DIMENSIONS,
        precision=precision,
    )


PHASE_TAPS = (
    (3, 1),
    (2, 0),
)  # output row 2m+a takes window rows (dy = 0, 1) with these kernel taps


def _phase_kernel(kernel: jax.Array) -> jax.Array:
    """(4, 4, in, out) stride-2 kernel -> (2, 2, in, 4*out): the four output phases' 2x2 kernels.

    Output row 2m takes input rows (m-1, m) with taps (3, 1); row 2m+1 takes (m, m+1) with taps
    (2, 0).
    """
    phases = [
        kernel[np.array(PHASE_TAPS[a])][:, np.array(PHASE_TAPS[b])] for a in (0, 1) for b in (0, 1)
    ]
    return jnp.concatenate(phases, axis=-1)  # phase-major: (a, b) = (0, 0), (0, 1), (1, 0), (1, 1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_transpose_2x(
    x: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None
) -> jax.Array:
    """`ConvTranspose2d(kernel_size=4, stride=2, padding=1)`: (N, H, W, in) -> (N, 2H, 2W, out).

    Forward in sub-pixel form (one stride-1 2x2 convolution for all four phases, then interleaving);
    backward as an ordinary strided convolution (input) and patches times a matrix (kernel), because
    autodiff of an input-dilated convolution is XLA's slowest CPU path. `precision` reaches all
    three.
    """
    return _conv_transpose_2x_forward(x, kernel, precision)


def _conv_transpose_2x_forward(x, kernel, precision):
    n, h, w, _ = x.shape
    out = kernel.shape[-1]
    y = conv2d(
        x, _phase_kernel(kernel), 1, 1, precision
    )  # (N, H+1, W+1, 4*out): every 2x2 window, all phases
    y = y.reshape(n, h + 1, w + 1, 2, 2, out)
    # Phase (a, b) of output pixel (m, n) is window (m + a, n + b); interleave the phases.
    rows = [jnp.stack([y[:, a : a + h, b : b + w, a, b] for b in (0, 1)], axis=3) for a in (0, 1)]
    return jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, out)  # (N, 2H, 2W, out)


def _conv_transpose_2x_fwd(x, kernel, precision):
    return _conv_transpose_2x_forward(x, kernel, precision), (x, kernel)


def _conv_transpose_2x_bwd(precision, residuals, grad_y):
    x, kernel = residuals
    grad_x = conv2d(
        grad_y, kernel.transpose(0, 1, 3, 2), 2, 1, precision
    )  # the adjoint: a plain conv
    patches = lax.conv_general_dilated_patches(
        grad_y, (4, 4), (2, 2), [(1, 1)] * 2, dimension_numbers=DIMENSIONS, precision=precision
    )  # (N, H, W, out*4*4), channel slowest; itself a convolution (with a one-hot kernel)
    out = kernel.shape[-1]
    grad_kernel = jnp.einsum(
        "nhwi,nhwp->ip", x, patches, precision=precision, preferred_element_type=x.dtype
    ).reshape(x.shape[-1], out, 4, 4)
    return grad_x, grad_kernel.transpose(2, 3, 0, 1).astype(kernel.dtype)


conv_transpose_2x.defvjp(_conv_transpose_2x_fwd, _conv_transpose_2x_bwd)


def conv_transpose(
    x: jax.Array,
    kernel: jax.Array,
    stride: int,
    padding: int,
    precision: lax.Precision | None = None,
) -> jax.Array:
    """`torch.nn.functional.conv_transpose2d` in NHWC; `kernel` is (kh, kw, in, out)."""
    if x.shape[1:3] == (1, 1) and stride == 1 and padding == 0:  # latent -> 4x4: a matrix multiply
        return jnp.einsum("ni,hwio->nhwo", x[:, 0, 0], kernel, precision=precision)
    if (kernel.shape[0], kernel.shape[1], stride, padding) == (4, 4, 2, 1):
        return conv_transpose_2x(x, kernel, precision)
    if kernel.shape[0] == kernel.shape[1] == stride and padding == 0:
        return depth_to_space_transpose(x, kernel, precision)
    return _conv_transpose_dilated(x, kernel, stride, padding, precision)


def depth_to_space_transpose(
    x: jax.Array, kernel: jax.Array, precision: lax.Precision | None = None
) -> jax.Array:
    """A transposed convolution whose kernel equals its stride (no overlap): every input pixel
    becomes one f x f output block, a matrix multiply and a reshape (fast, and so is its
    gradient)."""
    count, height, width, _ = x.shape
    factor, channels = kernel.shape[0], kernel.shape[-1]
    blocks = jnp.einsum("nhwi,abio->nhawbo", x, kernel, precision=precision)
    return blocks.reshape(count, height * factor, width * factor, channels)


def torch_uniform(fan_in: int, scale: float = 1.0):
    """PyTorch's default initialiser of a convolution's weight and bias (kaiming_uniform with
    a=sqrt(5)): U(-b, b) with b = scale / sqrt(fan_in), fan_in of the layer's kernel."""

    def init(key, shape, dtype=jnp.float32):
        bound = scale / np.sqrt(fan_in)
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


SPECTRAL = "spectral"  # the collection of spectral normalisation's power-iteration vectors
SPECTRAL_EPS = 1e-12  # torch.nn.functional.normalize's eps, as spectral_norm uses it
SPECTRAL_INIT_ITERATIONS = 15  # power iterations at initialisation, as PyTorch does


def _normalize(x: jax.Array) -> jax.Array:
    """`torch.nn.functional.normalize(x, dim=0, eps=1e-12)`."""
    return x / jnp.maximum(jnp.linalg.norm(x), SPECTRAL_EPS)


def _power_iteration(matrix: jax.Array, u: jax.Array, v: jax.Array, precision) -> tuple:
    """One step of PyTorch's `parametrizations.spectral_norm`: u from v, then v from u."""
    u = _normalize(jnp.dot(matrix, v, precision=precision))
    return u, _normalize(jnp.dot(matrix.T, u, precision=precision))


class _Convolution(nn.Module):
    """A convolution layer with a kernel of shape (kernel_size, kernel_size, in, features), computed
    in `dtype` at `precision` (see `lax_precision`). `init` "dcgan": N(0, 0.02), no bias (the
    seed's G and D); "torch": PyTorch's default uniform weight and bias, both times `init_scale`
    (the restorer); "zeros": weight and bias 0 (the restorer's last layer: it starts at its
    input).

    With `spectral_norm`, the kernel is divided by its largest singular value as
    `torch.nn.utils.parametrizations.spectral_norm` estimates it: the kernel as PyTorch's
    (out, in * kh * kw) matrix, vectors u (out) and v (in * kh * kw) in the `spectral` collection,
    one power iteration per train-mode call (when the collection is mutable), none in eval mode,
    sigma = u . (W v) with no gradient through u and v.
    """

    features: int
    stride: int
    padding: int
    kernel_size: int = 4
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    precision: str = DEFAULT_PRECISION
    spectral_norm: bool = False
    init: str = "dcgan"  # "dcgan" (no bias), "torch" or "zeros" (both with a bias)
    init_scale: float = 1.0  # multiplies the "torch" initialisation (scaled-down residual blocks)
    torch_layout: tuple[int, ...] = (3, 2, 0, 1)  # HWIO -> PyTorch's OIHW, whose dim 0 is "out"
    torch_fan_in: tuple[int, ...] = (0, 1, 2)  # kernel axes of PyTorch's fan_in (kh, kw, in)

    def apply_kernel(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        raise NotImplementedError

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        if self.init not in ("dcgan", "torch", "zeros"):
            raise ValueError(f"init must be 'dcgan', 'torch' or 'zeros', got {self.init!r}")
        fan_in = int(np.prod([shape[axis] for axis in self.torch_fan_in]))
        weight_init = {
            "dcgan": dcgan_normal(),
            "torch": torch_uniform(fan_in, self.init_scale),
            "zeros": nn.initializers.zeros,
        }[self.init]
        kernel = self.param("kernel", weight_init, shape, self.param_dtype)
        if self.spectral_norm:
            kernel = self.spectral_normalized(kernel)
        y = self.apply_kernel(x.astype(self.dtype), kernel.astype(self.dtype))
        if self.init == "dcgan":
            return y
        bias = self.param("bias", weight_init, (self.features,), self.param_dtype)
        return y + bias.astype(self.dtype)

    def spectral_normalized(self, kernel: jax.Array) -> jax.Array:
        precision = lax_precision(self.precision)
        torch_kernel = jnp.transpose(kernel, self.torch_layout)
        matrix = torch_kernel.reshape(torch_kernel.shape[0], -1)  # (out, in * kh * kw)
        frozen = jax.lax.stop_gradient(matrix)

        start = None
        if not self.has_variable(SPECTRAL, "u"):  # PyTorch's start: normalised N(0, 1) vectors,
            key_u, key_v = jax.random.split(self.make_rng("params"))  # then 15 power iterations
            start = (
                _normalize(jax.random.normal(key_u, frozen.shape[:1], frozen.dtype)),
                _normalize(jax.random.normal(key_v, frozen.shape[1:], frozen.dtype)),
            )
            start = jax.lax.fori_loop(
                0,
                SPECTRAL_INIT_ITERATIONS,
                lambda _, vectors: _power_iteration(frozen, *vectors, precision),
                start,
            )
        u = self.variable(SPECTRAL, "u", lambda: start[0])
        v = self.variable(SPECTRAL, "v", lambda: start[1])
        if self.is_mutable_collection(SPECTRAL) and not self.is_initializing():
            u.value, v.value = _power_iteration(frozen, u.value, v.value, precision)
        left, right = jax.lax.stop_gradient(u.value), jax.lax.stop_gradient(v.value)
        sigma = jnp.dot(left, jnp.dot(matrix, right, precision=precision), precision=precision)
        return kernel / sigma


class Conv(_Convolution):
    """`nn.Conv2d` (bias only with init "torch" or "zeros"); kernel HWIO."""

    def apply_kernel(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        if x.shape[1:3] == (self.kernel_size, self.kernel_size) and self.padding == 0:
            # A kernel that covers the whole input (D's last layer) is a matrix multiply.
            return jnp.einsum("nhwi,hwio->no", x, kernel, precision=lax_precision(self.precision))[
                :, None, None, :
            ]
        return conv2d(x, kernel, self.stride, self.padding, lax_precision(self.precision))


class ConvTranspose(_Convolution):
    """`nn.ConvTranspose2d(bias=False)`; kernel (kh, kw, in, out), unflipped as PyTorch stores
    it."""

    torch_fan_in: tuple[int, ...] = (0, 1, 3)  # PyTorch's fan_in of (in, out, kh, kw): out*kh*kw

    def apply_kernel(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        return conv_transpose(x, kernel, self.stride, self.padding, lax_precision(self.precision))


class BatchNorm(nn.Module):
    """`nn.BatchNorm2d` exactly: momentum 0.1, eps 1e-5, running variance from the unbiased batch
    variance.

    Statistics are computed in float32 or wider whatever the compute dtype. Under `jit` with the
    batch sharded over devices the means are over the global batch (pmap's cross-replica BatchNorm).
    With `num_classes`, conditional BatchNorm (de Vries et al. 2017; BigGAN's, SNGAN's): `scale`
    and `bias` are (num_classes, features) tables and each example uses its class's row (every
    row initialised as the plain layer's).
    """

    momentum: float = 0.1
    epsilon: float = 1e-5
    dtype: Dtype = jnp.float32
    param_dtype: Dtype = jnp.float32
    num_classes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, labels: jax.Array | None = None) -> jax.Array:
        features = x.shape[-1]
        stat_dtype = jnp.promote_types(self.param_dtype, jnp.float32)
        shape = (self.num_classes, features) if self.num_classes else (features,)
        scale = self.param("scale", dcgan_normal(1.0), shape, self.param_dtype)
        bias = self.param("bias", nn.initializers.zeros, shape, self.param_dtype)
        if self.num_classes:  # each example's class row, broadcast over its positions
            if labels is None:
                raise ValueError(
                    f"a conditional BatchNorm ({self.num_classes} classes) needs labels"
                )
            scale, bias = (table[labels][:, None, None, :] for table in (scale, bias))
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), stat_dtype)
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,), stat_dtype)
        tracked = self.variable("batch_stats", "num_batches_tracked", jnp.zeros, (), jnp.int32)
        if train:
            values = x.astype(stat_dtype)
            mean = values.mean(axis=(0, 1, 2))
            var = jnp.square(values - mean).mean(axis=(0, 1, 2))
            if not self.is_initializing():
                count = x.size // features
                unbiased = var * (count / max(count - 1, 1))
                running_mean.value = (1 - self.momentum) * running_mean.value + self.momentum * mean
                running_var.value = (
                    1 - self.momentum
                ) * running_var.value + self.momentum * unbiased
                tracked.value = tracked.value + 1
        else:
            mean, var = running_mean.value, running_var.value
        multiplier = scale.astype(stat_dtype) * lax.rsqrt(var + self.epsilon)
        shift = bias.astype(stat_dtype) - mean * multiplier
        return (x.astype(stat_dtype) * multiplier + shift).astype(self.dtype)
