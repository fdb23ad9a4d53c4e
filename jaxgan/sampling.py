"""Generating images: a generator (a converted model folder or a training workdir) sampled in
batches.

`generate` streams batches through one compiled function; BatchNorm uses the running statistics
(eval mode) unless `batch_stats=True` asks for train-mode statistics of each batch, as
pytorch/examples' sample grids are made.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.convert import build_model
from jaxgan.data.order import sample_latents
from jaxgan.loading import load_variables


def load_generator(
    path: str | os.PathLike, use_ema: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arch, variables) of a generator from a converted model folder or a training workdir (its
    latest checkpoint: the EMA parameters when the run keeps an EMA and `use_ema`, with the live
    BatchNorm statistics)."""
    arch, variables, _ = load_variables(path, "generator", use_ema)
    return arch, variables


@functools.lru_cache(maxsize=8)
def _generate_fn(arch_items: tuple, dtype: str, batch_stats: bool):
    model = build_model(dict(arch_items), jnp.dtype(dtype))

    @jax.jit
    def generate(variables, latents):
        if batch_stats:
            images, _ = model.apply(variables, latents, train=True, mutable=["batch_stats"])
            return images
        return model.apply(variables, latents, train=False)

    return generate


def iterate_generate(
    arch: dict[str, Any],
    variables: Any,
    latents: np.ndarray,
    batch_size: int = 256,
    batch_stats: bool = False,
    starts: Iterable[int] | None = None,
) -> Iterator[np.ndarray]:
    """Batches of float32 NHWC images in [-1, 1] for `latents` (N, nz), one compiled shape; only the
    batches beginning at `starts` when given (the same images as in a run over all of them)."""
    if arch["model"] != "generator":
        raise ValueError(f"this checkpoint holds a {arch['model']}, not a generator")
    latents = np.asarray(latents).reshape(
        len(latents), -1
    )  # (N, nz, 1, 1) as PyTorch uses is fine too
    if latents.shape[1] != arch["nz"]:
        raise ValueError(
            f"latents have {latents.shape[1]} dimensions; this generator takes nz={arch['nz']}"
        )
    dtype = jax.tree.leaves(variables["params"])[0].dtype
    generate = _generate_fn(tuple(sorted(arch.items())), jnp.dtype(dtype).name, batch_stats)
    size = min(batch_size, len(latents))
    for start in range(0, len(latents), size) if starts is None else starts:
        chunk = latents[start : start + size].astype(dtype)
        count = len(chunk)
        if count < size and not batch_stats:  # pad to the compiled shape; eval mode is per-example
            chunk = np.concatenate([chunk, np.zeros((size - count, chunk.shape[1]), chunk.dtype)])
        yield np.asarray(generate(variables, chunk), np.float32)[:count]


def generate(
    checkpoint_path: str | os.PathLike,
    latents: np.ndarray | None = None,
    num: int | None = None,
    seed: int = 0,
    batch_stats: bool = False,
    use_ema: bool = True,
    batch_size: int = 256,
) -> np.ndarray:
    """Images (N, S, S, nc) float32 in [-1, 1] from given latents, or `num` latents drawn from
    `seed`."""
    arch, variables = load_generator(checkpoint_path, use_ema)
    if latents is None:
        if num is None:
            raise ValueError("give latents or num")
        latents = sample_latents(seed, num, arch["nz"])
    return np.concatenate(list(iterate_generate(arch, variables, latents, batch_size, batch_stats)))
