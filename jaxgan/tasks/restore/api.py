"""`jaxgan.restore(image, checkpoint, mask=None)` (or `model=NAME`, a shipped restorer): restore a
real image of any size, type and band count.

The image keeps its size, dtype and value range; with a mask (1 / white = missing) only the missing
pixels change and the known ones come back bit for bit. Bands are matched to the model's `nc`: equal
counts go straight in; a 1-channel model restores each band on its own (N-band scans, colour); a
3-channel model takes grayscale as three equal channels and returns their BT.601 luma.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import run_info
from jaxgan.config import Config
from jaxgan.data import images
from jaxgan.data.images import ImageError
from jaxgan.loading import load_variables
from jaxgan.tasks.restore.degradations import Degradation, fill_holes, upsample
from jaxgan.tasks.restore.ensemble import self_ensemble
from jaxgan.tasks.restore.files import check_array, read_any
from jaxgan.tasks.restore.tiling import fitted_tile, tiled_apply

RESIDUAL_TILE, RESIDUAL_OVERLAP = 1024, 32  # fully convolutional: big tiles, few overlaps

ImageLike = np.ndarray | str | os.PathLike


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedRestorer:
    """A restorer's architecture, variables and (from a workdir) training config, with its compiled
    tile function."""

    path: str
    arch: dict[str, Any]
    variables: Any
    config: Config | None

    @property
    def image_size(self) -> int:
        return self.arch["image_size"]

    @property
    def nc(self) -> int:
        return self.arch["nc"]

    @property
    def degradation(self) -> Degradation | None:
        return Degradation.from_config(self.config) if self.config is not None else None

    @property
    def hole_fill(self) -> str:
        """What holes hold before restoration, as in training: the config's `hole_fill`; for a
        converted folder, harmonic for the residual restorer and zero for the encoder-decoder."""
        if self.config is not None:
            return self.config.hole_fill
        return "harmonic" if self.arch["model"] == "residual_restorer" else "zero"

    def tile_and_overlap(self, height: int, width: int, batch_size: int) -> tuple[int, int]:
        """The tile side and default overlap for an image: the training size (overlap a quarter)
        for the encoder-decoder; for the residual restorer tiles of at most 512 overlapping by 32
        (over its receptive field), or one tile, whichever computes the fewest pixels
        (`tiling.fitted_tile`)."""
        if self.arch["model"] != "residual_restorer":
            return self.image_size, self.image_size // 4
        step = 8 * self.arch["unshuffle"]
        side = -(-max(height, width) // step) * step  # one tile
        if side > 4 * RESIDUAL_OVERLAP:
            largest = min(RESIDUAL_TILE, side)
            side = fitted_tile(height, width, RESIDUAL_OVERLAP, step, largest, batch_size)
        return side, min(RESIDUAL_OVERLAP, side // 4)

    def fills_holes(self, has_mask: bool) -> bool:
        """Whether masked pixels are blanked (inpainting) or kept as input (denoising,
        super-resolution): from the training config when known; for a converted folder, inpainting
        exactly when a mask is given."""
        return self.degradation.is_inpainting if self.degradation is not None else has_mask

    @functools.cached_property
    def apply(self):
        """jit: (tiles (B, S, S, nc) in [-1, 1], holes already filled, masks (B, S, S, 1)) ->
        restored, eval mode."""
        from jaxgan.convert import build_model

        dtype = jax.tree.leaves(self.variables["params"])[0].dtype
        model = build_model(self.arch, dtype)
        if (
            self.config is not None
        ):  # a training workdir: its precision (a converted folder: the default)
            model = model.clone(precision=self.config.precision)
        variables = jax.device_put(self.variables)

        @jax.jit
        def run(tiles, masks):
            tiles, masks = tiles.astype(dtype), masks.astype(dtype)
            restored = model.apply(variables, tiles, masks, train=False)
            return jnp.clip(restored, -1, 1).astype(jnp.float32)

        return run

    def restore_batches(
        self,
        damaged: np.ndarray,
        mask: np.ndarray,
        batch_size: int = 100,
        ensemble: bool = False,
    ) -> np.ndarray:
        """S x S damaged images (N, S, S, nc) in [-1, 1] (holes filled as the degradation fills
        them) -> restored, known pixels kept (mask 0), one compiled shape; `ensemble` averages the
        8 flips and rotations."""

        def run(damaged: np.ndarray, mask: np.ndarray) -> np.ndarray:
            out = []
            for first in range(0, len(damaged), batch_size):
                chunk, holes = damaged[first : first + batch_size], mask[first : first + batch_size]
                count = len(chunk)
                if count < batch_size and len(damaged) > batch_size:
                    fill = batch_size - count
                    chunk = np.concatenate(
                        [chunk, np.zeros((fill,) + chunk.shape[1:], chunk.dtype)]
                    )
                    holes = np.concatenate(
                        [holes, np.zeros((fill,) + holes.shape[1:], holes.dtype)]
                    )
                out.append(np.asarray(self.apply(chunk, holes))[:count])
            return np.concatenate(out)

        restored = self_ensemble(run, damaged, mask) if ensemble else run(damaged, mask)
        return np.where(mask > 0.5, restored, damaged)


def load_restorer(
    checkpoint: str | os.PathLike | LoadedRestorer | None = None,
    use_ema: bool = True,
    model: str | None = None,
) -> LoadedRestorer:
    """A restorer from a training workdir (latest checkpoint; EMA when kept), a converted model
    folder, or (`model`) a shipped restorer by name (`jaxgan.tasks.restore.pretrained`)."""
    if isinstance(checkpoint, LoadedRestorer):
        return checkpoint
    if (checkpoint is None) == (model is None):
        raise ValueError("give a restorer's checkpoint or a shipped model's name (model=), one")
    if model is not None:
        return shipped_restorer(model)
    hint = (
        "; train one with a restore_* config, or use --method gan-prior to restore with a generator"
        if run_info.is_workdir(checkpoint)
        else ""
    )
    arch, variables, config = load_variables(checkpoint, "restorer", use_ema, hint)
    return LoadedRestorer(str(checkpoint), arch, variables, config)


@functools.cache
def shipped_restorer(model: str) -> LoadedRestorer:
    """A shipped restorer by name, loaded and compiled once a process: `restore(..., model=NAME)`
    in a loop compiles its tiles' program on the first call only."""
    from jaxgan.tasks.restore import pretrained

    arch, variables, config = pretrained.load(model)
    return LoadedRestorer(f"shipped restorer {model!r}", arch, variables, config)


def check_scale(restorer: LoadedRestorer, scale: int) -> None:
    """`scale` must be the super-resolution restorer's own factor, and 1 for any other restorer
    (a converted folder, which records no training degradation, takes any)."""
    degradation = restorer.degradation
    if degradation is None:
        return
    own = degradation.scale_factor if degradation.name == "downsample" else 1
    if scale != own:
        what = f"{own}x super-resolution" if own != 1 else f"{degradation.name} (no upsampling)"
        raise ValueError(
            f"--scale {scale}: {restorer.path} was trained for {what}; give --scale {own}"
        )


def read_mask(mask: ImageLike, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """A mask (file or array; 1 / white = missing, any band) -> bool (H, W); its size must be the
    image's."""
    if isinstance(mask, (str, os.PathLike)):
        name, mask = str(mask), read_any(mask)
    array = check_array(mask, name)
    if array.shape[:2] != tuple(shape):
        raise ImageError(
            f"{name}: mask is {array.shape[1]}x{array.shape[0]} (width x height) but the image is "
            f"{shape[1]}x{shape[0]}; they must match"
        )
    if array.dtype.kind == "f":
        return np.any(array > 0.5, axis=-1)
    return np.any(images.to_unit(array) > 0.5, axis=-1)


def restore(
    image: ImageLike,
    checkpoint: str | os.PathLike | LoadedRestorer | None = None,
    mask: ImageLike | None = None,
    *,
    model: str | None = None,
    value_range: tuple[float, float] | None = None,
    scale: int = 1,
    overlap: int | None = None,
    batch_size: int = 8,
    use_ema: bool = True,
    shift: int = 0,
    ensemble: bool = False,
) -> np.ndarray:
    """Restore one image (array or file) with a restorer (a checkpoint, or `model`, the name of a
    shipped one); the result has the input's shape, dtype and range.

    `mask` (1 / white = missing) is needed by inpainting restorers and keeps every other pixel
    exactly; without one every pixel is restored. `scale` first upsamples by that factor for a
    super-resolution restorer, as its training did (`degradations.upsample`, bicubic); it must be
    the restorer's own factor. `overlap` is the tile overlap (`LoadedRestorer.tile_and_overlap`);
    `shift` moves the tile grid (to measure seams). `ensemble` averages the 8 flips and rotations
    (8x the time). Float images are read as `value_range` (default [0, 1]).
    """
    name = str(image) if isinstance(image, (str, os.PathLike)) else "image"
    array = read_any(image) if isinstance(image, (str, os.PathLike)) else check_array(image, name)
    original_ndim = np.ndim(image) if not isinstance(image, (str, os.PathLike)) else 3
    restorer = load_restorer(checkpoint, use_ema, model)
    degradation = restorer.degradation
    unit = images.to_unit(array, value_range, name)
    check_scale(restorer, scale)
    if scale != 1:
        if mask is not None:
            raise ValueError("a mask and a scale factor cannot be combined")
        size = (unit.shape[0] * scale, unit.shape[1] * scale)
        unit = (np.asarray(upsample(jnp.asarray(unit[None] * 2 - 1), size, "bicubic"))[0] + 1) / 2
    if mask is None and degradation is not None and degradation.is_inpainting:
        raise ValueError(
            f"{restorer.path} is an inpainting restorer ({degradation.name}): give a mask "
            "(white = missing) of the image's size"
        )
    hole = np.ones(unit.shape[:2], bool) if mask is None else read_mask(mask, unit.shape[:2])
    planes = match_bands(unit, restorer.nc, name)
    tile, default_overlap = restorer.tile_and_overlap(*unit.shape[:2], batch_size)
    overlap = default_overlap if overlap is None else overlap
    restored = []
    fill = restorer.fills_holes(mask is not None)
    hole_mask = hole[..., None].astype(np.float32)
    fill_fn = jax.jit(fill_holes, static_argnums=2)
    for plane in planes:
        model_input = plane * 2 - 1
        if fill:
            model_input = np.asarray(
                fill_fn(model_input[None], hole_mask[None], restorer.hole_fill)
            )[0]

        def run(inputs: np.ndarray, holes: np.ndarray) -> np.ndarray:
            return tiled_apply(
                inputs,
                holes,
                restorer.apply,
                tile,
                overlap,
                batch_size,
                skip_known=mask is not None,
                shift=shift,
            )

        out = (
            self_ensemble(run, model_input, hole_mask) if ensemble else run(model_input, hole_mask)
        )
        restored.append((out + 1) / 2)
    unit_out = unmatch_bands(restored, unit.shape[-1], restorer.nc)
    unit_out = np.where(
        hole[..., None], unit_out, unit
    )  # NaN-free: skipped tiles held only known pixels
    result = images.from_unit(unit_out, array.dtype, value_range)
    if mask is not None:
        result[~hole] = array[~hole]  # known pixels, bit for bit
    return result[..., 0] if original_ndim == 2 else result


def match_bands(unit: np.ndarray, nc: int, name: str) -> list[np.ndarray]:
    """An image's bands -> the model inputs (H, W, nc) that restore it."""
    bands = unit.shape[-1]
    if bands == nc:
        return [unit]
    if nc == 1:
        return [unit[..., b : b + 1] for b in range(bands)]
    if nc == 3 and bands == 1:
        return [images.to_channels(unit, 3, name)]
    raise ImageError(
        f"{name}: has {bands} bands; this restorer takes {nc} (colour), so only 1- or 3-band "
        f"images are meaningful (use a 1-channel restorer to restore each band on its own)"
    )


def unmatch_bands(restored: list[np.ndarray], bands: int, nc: int) -> np.ndarray:
    if bands == nc:
        return restored[0]
    if nc == 1:
        return np.concatenate(restored, axis=-1)
    return images.to_channels(restored[0], 1)  # grayscale through a colour model: BT.601 luma
