"""Reading image files and the one mapping from files to jaxgan's pixels.

Inside jaxgan images are NHWC float in [-1, 1]. Files map to it as follows (docs/training.md,
"Data"): uint8 0..255 and uint16 0..65535 are scaled linearly to [-1, 1]; float files are read as
[0, 1] unless a range is given, values outside are clipped with a warning, and outputs map back with
the same range.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as PIL's "L" conversion


class ImageError(ValueError):
    """An image that cannot be read or used; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A file -> HWC array in its own dtype (uint8, uint16 or float32); palettes expanded, alpha
    dropped."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "1"):
                image = image.convert(
                    "RGBA" if "A" in image.mode or "transparency" in image.info else "RGB"
                )
            array = np.asarray(image)
    except (
        OSError,
        ValueError,
        SyntaxError,
    ) as error:  # PIL's errors for unreadable or truncated files
        raise ImageError(f"{path}: cannot read image ({error})") from error
    if array.dtype == np.int32:  # PIL mode "I" holds 16-bit PNGs
        array = (
            array.astype(np.uint16)
            if array.min() >= 0 and array.max() < 2**16
            else array.astype(np.float32)
        )
    elif array.dtype not in (np.uint8, np.uint16):
        array = array.astype(np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[-1] in (2, 4):  # LA, RGBA: drop alpha
        array = array[..., :-1]
    return array


def to_unit(
    array: np.ndarray, value_range: tuple[float, float] | None = None, name: str = "image"
) -> np.ndarray:
    """Pixels -> float32 in [0, 1]: integers by their bit depth, floats by `value_range`
    (default [0, 1])."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    low, high = value_range or (0.0, 1.0)
    unit = (array.astype(np.float32) - low) / (high - low)
    if unit.min() < 0 or unit.max() > 1:
        warnings.warn(f"{name}: values outside [{low}, {high}] were clipped", stacklevel=2)
        unit = np.clip(unit, 0, 1)
    return unit


def from_unit(
    unit: np.ndarray, dtype: np.dtype, value_range: tuple[float, float] | None = None
) -> np.ndarray:
    """The inverse of `to_unit`: [0, 1] floats back to a file's dtype and range."""
    unit = np.clip(unit, 0, 1)
    if dtype == np.uint8:
        return np.round(unit * 255).astype(np.uint8)
    if dtype == np.uint16:
        return np.round(unit * 65535).astype(np.uint16)
    low, high = value_range or (0.0, 1.0)
    return (unit * (high - low) + low).astype(dtype)


def to_channels(unit: np.ndarray, nc: int, name: str = "image") -> np.ndarray:
    """HWC -> HW nc: colour to grayscale by BT.601 luma, grayscale replicated to colour."""
    channels = unit.shape[-1]
    if channels == nc:
        return unit
    if nc == 1 and channels == 3:
        return (unit @ LUMA.astype(unit.dtype))[..., None]
    if nc == 3 and channels == 1:
        return np.repeat(unit, 3, axis=-1)
    raise ImageError(
        f"{name}: has {channels} channels; cannot convert to {nc} (only 1 <-> 3 is meaningful)"
    )


def resize(unit: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize of float HWC (PIL, antialiased when shrinking), channel by channel."""
    if unit.shape[:2] == (height, width):
        return unit
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(unit[..., c]), mode="F").resize(
                (width, height), Image.Resampling.BICUBIC
            )
        )
        for c in range(unit.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def centre_crop(unit: np.ndarray) -> np.ndarray:
    height, width = unit.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return unit[top : top + side, left : left + side]


def to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.round(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def prepare(array: np.ndarray, image_size: int, nc: int, name: str = "image") -> np.ndarray:
    """Any image -> uint8 (S, S, nc): centre-cropped square, resized (as CelebA 64x64 is
    prepared)."""
    unit = to_channels(to_unit(array, name=name), nc, name)
    return to_uint8(resize(centre_crop(unit), image_size, image_size))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under `folder`, recursively, sorted; a clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"data folder {folder} does not exist (or is not a folder)")
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not files:
        raise ImageError(
            f"data folder {folder} holds no images (looked recursively for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return files


def to_model_range(images: jax.Array, dtype) -> jax.Array:
    """uint8 0..255 -> float in [-1, 1] (x / 127.5 - 1, in at least float32); float input is taken
    as already in range. The one conversion of batches, held-out crops and metric inputs."""
    if jnp.issubdtype(images.dtype, jnp.integer):
        images = images.astype(jnp.promote_types(dtype, jnp.float32)) / 127.5 - 1
    return images.astype(dtype)
