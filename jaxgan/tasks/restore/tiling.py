"""Images of any size through a model of one tile size: overlapping tiles, feathered blending,
reflect padding.

Along an axis longer than the tile, the image is reflect-padded by `overlap` (more at the end to
fill the grid) and cut into tiles at a stride of `tile - overlap`. Each tile's weight rises linearly
over its first `overlap` pixels and falls over its last `overlap` pixels; at that stride the ramps
of neighbouring tiles add up to exactly one (a partition of unity), so blending shifts no
brightness, and every image pixel is at least `overlap / 2` pixels away from the edge of a tile that
gives it weight.
An axis that fits in one tile is padded to the tile and weighted 1, so an image of exactly one tile
gives the model's own output. Tiles are cut from host memory and sent in fixed-size batches (one
compiled shape an image, the batches evened out so that the last is padded by less than one tile a
batch), the next batch dispatched before the previous one is fetched: the whole image never has to
fit on the device. `fitted_tile` sizes the tiles to the image: the fewest pixels computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

TileFn = Callable[
    [np.ndarray, np.ndarray], object
]  # (tiles (B, T, T, C), masks (B, T, T, 1)) -> (B, T, T, C)


@dataclasses.dataclass(frozen=True)
class AxisLayout:
    """Tiles along one axis: padding before/after the image, tile starts (in padded coordinates),
    the window."""

    length: int
    pad_before: int
    pad_after: int
    starts: tuple[int, ...]
    window: np.ndarray  # (tile,) float64 blending weights of one tile


def axis_layout(length: int, tile: int, overlap: int, shift: int = 0) -> AxisLayout:
    """The tiles covering `length` pixels; `shift` moves the grid by that many pixels (seam
    measurements)."""
    if not 0 <= 2 * overlap <= tile:
        raise ValueError(
            f"tile overlap must be between 0 and half the tile ({tile // 2}), got {overlap}"
        )
    if length < 1:
        raise ValueError(f"cannot tile an axis of length {length}")
    if length <= tile and shift == 0:
        before = (tile - length) // 2
        return AxisLayout(length, before, tile - length - before, (0,), np.ones(tile))
    stride = tile - overlap
    before = overlap + shift
    count = -(-max(length + before + overlap - tile, 0) // stride) + 1
    total = (count - 1) * stride + tile
    position = np.arange(tile) + 0.5
    window = (
        np.minimum(1.0, np.minimum(position, tile - position) / overlap)
        if overlap
        else np.ones(tile)
    )
    return AxisLayout(
        length, before, total - length - before, tuple(i * stride for i in range(count)), window
    )


def even_batch(count: int, batch_size: int) -> int:
    """The batch size that sends `count` tiles in as few batches of at most `batch_size` as
    possible, padding the last one by less than one tile a batch (not by up to a whole batch)."""
    batches = -(-count // batch_size)
    return -(-count // batches)


def fitted_tile(
    height: int, width: int, overlap: int, multiple: int, max_tile: int, batch_size: int
) -> int:
    """The tile side (a multiple of `multiple`, at most `max_tile`) that computes the fewest pixels
    for an image, batch padding included: a 1024 x 1024 image takes 9 tiles of 384 (10 computed)
    rather than 25 of 256 (32 computed in batches of 8). Ties go to the larger tile."""

    def computed(tile: int) -> int:
        count = len(axis_layout(height, tile, overlap).starts) * len(
            axis_layout(width, tile, overlap).starts
        )
        batch = even_batch(count, batch_size)
        return -(-count // batch) * batch * tile * tile

    sides = range(max_tile - max_tile % multiple, 4 * overlap - 1, -multiple)
    return min(sides, key=computed)  # min keeps the first (largest) of equal costs


def weight_sum(layout: AxisLayout) -> np.ndarray:
    """The summed blending weights of every tile at each image pixel of the axis: one everywhere."""
    total = np.zeros(layout.pad_before + layout.length + layout.pad_after)
    for start in layout.starts:
        total[start : start + len(layout.window)] += layout.window
    return total[layout.pad_before : layout.pad_before + layout.length]


def pad(array: np.ndarray, rows: AxisLayout, cols: AxisLayout) -> np.ndarray:
    """Reflect padding of an HWC array (edge padding along an axis of one pixel)."""
    widths = [(rows.pad_before, rows.pad_after), (cols.pad_before, cols.pad_after), (0, 0)]
    mode = "reflect" if min(array.shape[:2]) > 1 else "edge"
    return np.pad(array, widths, mode=mode)


def tiled_apply(
    image: np.ndarray,
    mask: np.ndarray,
    tile_fn: TileFn,
    tile: int,
    overlap: int,
    batch_size: int = 32,
    skip_known: bool = False,
    shift: int = 0,
) -> np.ndarray:
    """`tile_fn` over overlapping tiles of `image` (H, W, C) float32 with `mask` (H, W, 1); blended
    (H, W, C).

    With `skip_known`, tiles without a missing pixel are not computed (their pixels are known and
    will be kept): inpainting a small hole in a large image costs a few tiles. Those pixels come
    back as NaN.
    """
    height, width, channels = image.shape
    if mask.shape != (height, width, 1):
        raise ValueError(f"mask shape {mask.shape} does not match the image's {(height, width, 1)}")
    rows, cols = axis_layout(height, tile, overlap, shift), axis_layout(width, tile, overlap, shift)
    padded_image = pad(np.asarray(image, np.float32), rows, cols)
    padded_mask = pad(np.asarray(mask, np.float32), rows, cols)
    positions = [
        (r, c)
        for r in rows.starts
        for c in cols.starts
        if not skip_known or padded_mask[r : r + tile, c : c + tile].any()
    ]
    total = np.zeros(padded_image.shape, np.float32)
    weights = np.zeros(padded_image.shape[:2] + (1,), np.float32)
    window = np.outer(rows.window, cols.window).astype(np.float32)[..., None]  # (T, T, 1)

    def accumulate(chunk: list[tuple[int, int]], result) -> None:
        result = np.asarray(result, np.float32)
        for (r, c), restored in zip(chunk, result):
            total[r : r + tile, c : c + tile] += window * restored
            weights[r : r + tile, c : c + tile] += window

    batch_size = even_batch(max(len(positions), 1), batch_size)
    pending = None
    for first in range(0, len(positions), batch_size):
        chunk = positions[first : first + batch_size]
        tiles = np.zeros((batch_size, tile, tile, channels), np.float32)
        masks = np.zeros((batch_size, tile, tile, 1), np.float32)
        for i, (r, c) in enumerate(chunk):
            tiles[i], masks[i] = (
                padded_image[r : r + tile, c : c + tile],
                padded_mask[r : r + tile, c : c + tile],
            )
        result = tile_fn(tiles, masks)  # dispatched; fetched after the next batch is sent
        if pending is not None:
            accumulate(*pending)
        pending = (chunk, result)
    if pending is not None:
        accumulate(*pending)
    with np.errstate(invalid="ignore", divide="ignore"):
        blended = np.where(weights > 0, total / np.where(weights > 0, weights, 1), np.nan)
    return blended[
        rows.pad_before : rows.pad_before + height, cols.pad_before : cols.pad_before + width
    ]
