"""Image files for restoration, at their own bit depth and band count: PNG/JPEG (Pillow), TIFF
(tifffile, any dtype and number of bands) and NumPy .npy. Outputs are written atomically in the
input's dtype.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from jaxgan.atomic import atomic_path
from jaxgan.data.images import IMAGE_SUFFIXES, ImageError, read_image

SUFFIXES = IMAGE_SUFFIXES | {".npy"}
DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)


def _png_bit_depth(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's header, or None if the file is not a PNG."""
    with open(path, "rb") as handle:
        header = handle.read(26)
    if header[:8] != b"\x89PNG\r\n\x1a\n" or len(header) < 26:
        return None
    return header[24], header[25]


def read_any(path: str | os.PathLike) -> np.ndarray:
    """A file -> HWC array in its own dtype: uint8, uint16 or float; any number of bands for TIFF
    and .npy."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                series = tiff.series[0]
                array, axes = series.asarray(), series.axes
            if array.ndim == 3 and axes[0] in "SC" and axes[-1] not in "SC":  # planar bands -> last
                array = np.moveaxis(array, 0, -1)
        else:
            depth = _png_bit_depth(path) if suffix == ".png" else None
            if depth is not None and depth[0] == 16 and depth[1] in (2, 6):
                raise ImageError(
                    f"{path}: 16-bit colour PNG, which Pillow reads only at 8 bits; save it as a "
                    f"16-bit TIFF or a .npy array to restore it at full depth"
                )
            return read_image(path)
    except ImageError:
        raise
    except (OSError, ValueError) as error:
        raise ImageError(f"{path}: cannot read image ({error})") from error
    return check_array(array, str(path))


def check_array(array: np.ndarray, name: str = "image") -> np.ndarray:
    """An HW or HWC array of a supported dtype as HWC; a clear error otherwise."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or min(array.shape) < 1:
        raise ImageError(
            f"{name}: expected an image of shape (H, W) or (H, W, bands), got {array.shape}"
        )
    if array.dtype not in DTYPES:
        raise ImageError(
            f"{name}: pixel type {array.dtype} is not supported (uint8, uint16 or float)"
        )
    return array


def write_any(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an HWC array in its own dtype (atomically); a clear error where the format cannot hold
    it."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImageError(
            f"{path}: unknown output format {suffix!r}; use one of {', '.join(sorted(SUFFIXES))}"
        )
    plane = array[..., 0] if array.shape[-1] == 1 else array
    if suffix in (".tif", ".tiff"):
        import tifffile

        photometric = "rgb" if array.shape[-1] == 3 else "minisblack"
        with atomic_path(path) as temporary:
            tifffile.imwrite(
                temporary,
                plane,
                photometric=photometric,
                planarconfig="contig" if array.shape[-1] > 1 else None,
            )
        return path
    if suffix == ".npy":
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.save(handle, array)
        return path
    fits = array.dtype == np.uint8 and array.shape[-1] in (1, 3)
    fits |= array.dtype == np.uint16 and array.shape[-1] == 1 and suffix == ".png"
    if not fits:
        raise ImageError(
            f"{path}: {suffix} cannot hold a {array.dtype} image of {array.shape[-1]} band(s); "
            f"write .tif or .npy to keep its bit depth and bands"
        )
    with atomic_path(path) as temporary:
        options = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
        Image.fromarray(plane).save(
            temporary, format=Image.registered_extensions()[suffix], **options
        )
    return path
