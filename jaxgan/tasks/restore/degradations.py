"""Degradations: clean images -> (damaged image, mask), seeded and jit-able, on the device.

Images are NHWC in [-1, 1]. The mask is (N, H, W, 1) with one convention everywhere: 1 = missing (a
pixel the restorer must replace; a white pixel in a mask file), 0 = known (kept exactly). Inpainting
masks hole a region, filled by a harmonic fill of its border (`hole_fill` "harmonic", the
classical answer the residual restorer corrects) or with 0, mid-grey ("zero", as Context Encoders
fills it with the mean); noise, downsampling and JPEG degrade every pixel, so their mask is all
ones. JPEG runs on the host (libjpeg through Pillow); everything else is `jax.random` keyed by the
caller, the same on any device count.
"""

from __future__ import annotations

import dataclasses
import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxgan.config import DEGRADATIONS, Config

INPAINTING = ("centre_square", "random_boxes", "strokes", "mixed_holes")
MIXED_HOLES = ("centre_square", "random_boxes", "strokes")  # mixed_holes: one of these per image
MAX_BOXES, MAX_STROKES, STROKE_VERTICES = 4, 4, 6


@dataclasses.dataclass(frozen=True)
class Degradation:
    """One degradation and its settings (hashable: a static argument of compiled functions)."""

    name: str
    image_size: int = 64
    noise_sigma: float = 25.0  # on the 0..255 scale
    scale_factor: int = 4
    downsampler: str = "bicubic"
    jpeg_quality: int = 20
    noise_sigma_max: float = 0.0  # > 0: each image's sigma from U(0, max) (blind training)
    hole_fill: str = "harmonic"

    def __post_init__(self):
        if self.name not in DEGRADATIONS:
            raise ValueError(f"unknown degradation {self.name!r}; expected one of {DEGRADATIONS}")

    @classmethod
    def from_config(cls, config: Config, training: bool = False) -> Degradation:
        """The degradation of evaluation (fixed `noise_sigma`) or, with `training`, of training
        (a sigma range for a blind denoiser)."""
        return cls(
            config.degradation,
            config.image_size,
            config.noise_sigma,
            config.scale_factor,
            config.downsampler,
            config.jpeg_quality,
            config.noise_sigma_max if training else 0.0,
            config.hole_fill,
        )

    @property
    def is_inpainting(self) -> bool:
        return self.name in INPAINTING

    @property
    def on_host(self) -> bool:
        return self.name == "jpeg"

    def describe(self) -> str:
        details = {
            "noise": (
                f"Gaussian noise, sigma 0-{self.noise_sigma_max:g}/255 (blind)"
                if self.noise_sigma_max
                else f"Gaussian noise, sigma {self.noise_sigma:g}/255"
            ),
            "downsample": (
                f"{self.scale_factor}x {self.downsampler} downsampling, bicubic upsampling back"
            ),
            "jpeg": f"JPEG quality {self.jpeg_quality}",
        }
        return details.get(self.name, f"inpainting ({self.name.replace('_', ' ')} mask)")

    def apply(self, key: jax.Array, clean: jax.Array, host_damaged: jax.Array | None = None):
        """(damaged, mask) for clean images (N, S, S, C) in [-1, 1]; `host_damaged` for JPEG (from
        the host)."""
        shape = clean.shape[:3] + (1,)
        if self.is_inpainting:
            mask = make_mask(self.name, key, clean.shape[0], clean.shape[1], clean.shape[2]).astype(
                clean.dtype
            )
            return fill_holes(clean, mask, self.hole_fill), mask
        ones = jnp.ones(shape, clean.dtype)
        if self.name == "noise":
            sigma = self.noise_sigma
            if self.noise_sigma_max:
                sigma = jax.random.uniform(
                    jax.random.fold_in(key, 1), shape[:1] + (1, 1, 1), maxval=self.noise_sigma_max
                )
            return add_noise(key, clean, sigma), ones
        if self.name == "downsample":
            low = downsample(clean, self.scale_factor, self.downsampler)
            return upsample(low, clean.shape[1:3], "bicubic"), ones
        if host_damaged is None:
            raise ValueError(
                "the JPEG degradation is applied on the host: pass its result as `host_damaged`"
            )
        return host_damaged.astype(clean.dtype), ones


def fill_holes(images: jax.Array, mask: jax.Array, method: str = "harmonic") -> jax.Array:
    """What a restorer sees in a hole (mask 1): a harmonic fill of its border ("harmonic") or 0,
    mid-grey ("zero")."""
    if method == "zero":
        return images * (1 - mask)
    if method == "harmonic":
        return harmonic_fill(images, mask)
    raise ValueError(f"unknown hole fill {method!r}; expected 'harmonic' or 'zero'")


HARMONIC_ITERATIONS = 100  # Jacobi sweeps at each level of the coarse-to-fine harmonic fill
COARSEST_SIDE = 4


def harmonic_fill(images: jax.Array, mask: jax.Array) -> jax.Array:
    """Holes filled with the solution of Laplace's equation from their borders (the smoothest fill;
    within a few tenths of a dB of scikit-image's biharmonic), on the device, for any size.

    Coarse to fine: the image and mask are halved (averages over known pixels) down to a few
    pixels, the coarsest holes take the mean of the known pixels, and each finer level starts its
    holes from the coarser answer and relaxes them with Jacobi sweeps (4-neighbour means; image
    edges reflect). Known pixels never change.
    """
    known = (1 - mask).astype(images.dtype)
    return _fill_level(images * known, known)


def _fill_level(values: jax.Array, known: jax.Array) -> jax.Array:
    """`values` (zero where unknown) and `known` weights (N, H, W, *) -> filled values."""
    height, width = values.shape[1:3]
    if min(height, width) <= COARSEST_SIDE:
        total = jnp.sum(known, axis=(1, 2), keepdims=True)
        mean = jnp.sum(values, axis=(1, 2), keepdims=True) / jnp.maximum(total, 1e-6)
        start = jnp.broadcast_to(mean, values.shape)
    else:  # an odd side gains an unknown row or column (weight 0) before halving
        even = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
        padded_values, padded_known = jnp.pad(values, even), jnp.pad(known, even)

        def halve(x):
            rows, cols = x.shape[1] // 2, x.shape[2] // 2
            return x.reshape(x.shape[0], rows, 2, cols, 2, x.shape[-1]).sum((2, 4))

        weight = halve(padded_known)
        coarse = _fill_level(halve(padded_values) / jnp.maximum(weight, 1e-6), (weight > 0) * 1.0)
        start = jnp.repeat(jnp.repeat(coarse, 2, axis=1), 2, axis=2)[:, :height, :width]
    hole = known < 0.5
    x = jnp.where(hole, start, values)

    def sweep(_, x):
        padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
        neighbours = (
            padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
        )
        return jnp.where(hole, neighbours / 4, x)

    return jax.lax.fori_loop(0, HARMONIC_ITERATIONS, sweep, x)


def make_mask(name: str, key: jax.Array, count: int, height: int, width: int) -> jax.Array:
    """Inpainting masks (count, H, W, 1) float32, 1 = missing."""
    if name == "centre_square":
        return jnp.broadcast_to(centre_square(height, width), (count, height, width, 1))
    if name == "random_boxes":
        return random_boxes(key, count, height, width)
    if name == "strokes":
        return strokes(key, count, height, width)
    if name == "mixed_holes":
        keys = jax.random.split(key, 3)
        masks = jnp.stack([make_mask(kind, keys[0], count, height, width) for kind in MIXED_HOLES])
        choice = jax.random.randint(keys[1], (count,), 0, len(MIXED_HOLES))
        return masks[choice, jnp.arange(count)]
    raise ValueError(f"{name!r} is not an inpainting mask; expected one of {INPAINTING}")


def centre_square(height: int, width: int) -> jax.Array:
    """Context Encoders' hole: the centre square of half the image's side, (H, W, 1)."""
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
    top, left = height // 4, width // 4
    inside = (
        (rows >= top) & (rows < top + height // 2) & (cols >= left) & (cols < left + width // 2)
    )
    return inside.astype(jnp.float32)[..., None]


def random_boxes(key: jax.Array, count: int, height: int, width: int) -> jax.Array:
    """1 to 4 axis-aligned boxes per image, sides 1/8 to 1/2 of the image's, anywhere inside it."""
    keys = jax.random.split(key, 4)
    number = jax.random.randint(keys[0], (count, 1), 1, MAX_BOXES + 1)
    sides = jax.random.uniform(keys[1], (count, MAX_BOXES, 2), minval=0.125, maxval=0.5)
    sides = jnp.round(sides * jnp.array([height, width])).astype(jnp.int32)  # (count, boxes, 2)
    corner = jax.random.uniform(keys[2], (count, MAX_BOXES, 2))
    corner = jnp.floor(corner * (jnp.array([height, width]) - sides + 1)).astype(jnp.int32)
    rows = jnp.arange(height)[None, None, :, None]
    cols = jnp.arange(width)[None, None, None, :]
    top, left = corner[..., 0, None, None], corner[..., 1, None, None]
    inside = (
        (rows >= top)
        & (rows < top + sides[..., 0, None, None])
        & (cols >= left)
        & (cols < left + sides[..., 1, None, None])
    )  # (count, boxes, H, W)
    active = jnp.arange(MAX_BOXES)[None, :] < number  # (count, boxes)
    return jnp.any(inside & active[..., None, None], axis=1).astype(jnp.float32)[..., None]


def strokes(key: jax.Array, count: int, height: int, width: int) -> jax.Array:
    """Free-form masks (as in Yu et al. 2019): 1 to 4 thick polylines per image, random-walk
    vertices."""
    keys = jax.random.split(key, 6)
    size = jnp.array([height, width], jnp.float32)
    side = min(height, width)
    number = jax.random.randint(keys[0], (count, 1), 1, MAX_STROKES + 1)
    start = jax.random.uniform(keys[1], (count, MAX_STROKES, 1, 2)) * size
    angles = jax.random.uniform(
        keys[2], (count, MAX_STROKES, STROKE_VERTICES - 1), maxval=2 * jnp.pi
    )
    lengths = jax.random.uniform(
        keys[3], (count, MAX_STROKES, STROKE_VERTICES - 1), minval=0.05, maxval=0.25
    )
    steps = jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1) * lengths[..., None] * side
    vertices = jnp.clip(
        jnp.concatenate([start, start + jnp.cumsum(steps, axis=2)], axis=2), 0, size - 1
    )
    radius = jax.random.uniform(
        keys[4], (count, MAX_STROKES, 1, 1), minval=side / 32, maxval=side / 12
    )
    a, b = vertices[:, :, :-1], vertices[:, :, 1:]  # segment ends (count, strokes, segments, 2)
    pixels = jnp.stack(
        jnp.meshgrid(jnp.arange(height), jnp.arange(width), indexing="ij"), -1
    ).reshape(-1, 2)
    pixels = pixels.astype(jnp.float32)  # (H*W, 2) pixel centres
    direction = (b - a)[..., None, :]  # (count, strokes, segments, 1, 2)
    offset = pixels - a[..., None, :]  # (count, strokes, segments, H*W, 2)
    along = jnp.clip(
        jnp.sum(offset * direction, -1) / jnp.maximum(jnp.sum(direction**2, -1), 1e-6), 0, 1
    )
    distance = jnp.linalg.norm(
        offset - along[..., None] * direction, axis=-1
    )  # (count, strokes, segments, H*W)
    covered = jnp.any(distance <= radius, axis=2)  # (count, strokes, H*W)
    active = jnp.arange(MAX_STROKES)[None, :, None] < number[..., None]
    return jnp.any(covered & active, axis=1).reshape(count, height, width, 1).astype(jnp.float32)


def add_noise(key: jax.Array, clean: jax.Array, sigma: float | jax.Array) -> jax.Array:
    """Additive white Gaussian noise of `sigma` (a number, or one per image (N, 1, 1, 1)) on the
    0..255 scale, clipped to the valid range as a file is."""
    noise = jax.random.normal(key, clean.shape, jnp.float32) * (sigma / 127.5)
    return jnp.clip(clean + noise.astype(clean.dtype), -1, 1)


def quantize(images: jax.Array) -> jax.Array:
    """Round [-1, 1] images to the 256 levels of an 8-bit file."""
    return jnp.round((jnp.clip(images, -1, 1) + 1) * 127.5) / 127.5 - 1


def downsample(images: jax.Array, factor: int, method: str = "bicubic") -> jax.Array:
    """(N, H, W, C) -> (N, H/f, W/f, C) 8-bit levels: `area` (box average) or antialiased `bicubic`
    (MATLAB's imresize, as super-resolution benchmarks make their low-resolution images)."""
    count, height, width, channels = images.shape
    if height % factor or width % factor:
        raise ValueError(
            f"image size {height}x{width} is not divisible by the scale factor {factor}"
        )
    if method == "area":
        low = images.reshape(
            count, height // factor, factor, width // factor, factor, channels
        ).mean(axis=(2, 4))
    elif method == "bicubic":
        shape = (count, height // factor, width // factor, channels)
        low = jax.image.resize(images.astype(jnp.float32), shape, "bicubic", antialias=True).astype(
            images.dtype
        )
    else:
        raise ValueError(f"unknown downsampler {method!r}; expected 'area' or 'bicubic'")
    return quantize(low)


def upsample(low: jax.Array, size: tuple[int, int], method: str = "bicubic") -> jax.Array:
    """Low-resolution (N, h, w, C) -> (N, H, W, C) by `bicubic` or `lanczos3`, clipped to
    [-1, 1]."""
    shape = (low.shape[0], *size, low.shape[-1])
    return jnp.clip(jax.image.resize(low.astype(jnp.float32), shape, method), -1, 1).astype(
        low.dtype
    )


def jpeg_compress(images: np.ndarray, quality: int) -> np.ndarray:
    """uint8 (N, H, W, C) through Pillow's JPEG encoder and decoder at `quality` (4:2:0 for colour),
    on the host."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
            buffer, format="JPEG", quality=int(quality)
        )
        decoded = np.asarray(Image.open(buffer))
        out[i] = decoded.reshape(image.shape)
    return out


def host_transform(degradation: Degradation):
    """A batch hook for `jaxgan.data.pipeline.Batches` adding host-made damaged images ("damaged",
    uint8), or None when the degradation runs on the device."""
    if not degradation.on_host:
        return None

    def transform(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**batch, "damaged": jpeg_compress(batch["images"], degradation.jpeg_quality)}

    return transform
