"""Test-time self-ensemble (Lim et al. 2017, EDSR+): restore each of the 8 flips and 90-degree
rotations of an image, undo each, and average (for any restorer: the training augmentation's
group)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TRANSFORMS = 8  # transpose (bit 2), flip rows (bit 1), flip columns (bit 0)


def dihedral(array: np.ndarray, index: int) -> np.ndarray:
    """Transform `index` (0-7) of an (..., H, W, C) array; 0 is the identity."""
    if index & 4:
        array = np.swapaxes(array, -3, -2)
    if index & 2:
        array = array[..., ::-1, :, :]
    if index & 1:
        array = array[..., :, ::-1, :]
    return array


def undo_dihedral(array: np.ndarray, index: int) -> np.ndarray:
    """The inverse of `dihedral(., index)`: the same three involutions in the reverse order."""
    if index & 1:
        array = array[..., :, ::-1, :]
    if index & 2:
        array = array[..., ::-1, :, :]
    if index & 4:
        array = np.swapaxes(array, -3, -2)
    return array


def self_ensemble(
    restore: Callable[[np.ndarray, np.ndarray], np.ndarray], image: np.ndarray, mask: np.ndarray
) -> np.ndarray:
    """The mean of `restore(image, mask)` over the 8 transforms, each result transformed back."""
    total = None
    for index in range(TRANSFORMS):
        restored = restore(
            np.ascontiguousarray(dihedral(image, index)),
            np.ascontiguousarray(dihedral(mask, index)),
        )
        restored = undo_dihedral(np.asarray(restored, np.float64), index)
        total = restored if total is None else total + restored
    return (total / TRANSFORMS).astype(np.float32)
