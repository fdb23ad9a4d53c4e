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


def class_rows(num_classes: int, num: int) -> np.ndarray:
    """Labels (C * k,) for a grid with one row per class, k = max(1, num // C) images a row."""
    return np.repeat(np.arange(num_classes, dtype=np.int32), max(1, num // num_classes))


def check_labels(arch: dict[str, Any], labels: np.ndarray | None, count: int) -> np.ndarray | None:
    """A generator's labels, checked: none for an unconditional one; for a conditional one, `count`
    classes in 0 .. num_classes - 1."""
    classes = arch.get("num_classes", 0)
    if not classes:
        if labels is not None:
            raise ValueError("this generator is unconditional: it takes no class labels")
        return None
    if labels is None:
        raise ValueError(
            f"this generator is class-conditional ({classes} classes): give the classes to draw "
            f"(--class 0..{classes - 1})"
        )
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != count:
        raise ValueError(f"{len(labels)} labels for {count} latents")
    outside = labels[(labels < 0) | (labels >= classes)]
    if outside.size:
        raise ValueError(
            f"class {int(outside[0])} is out of range: this generator draws classes "
            f"0..{classes - 1}"
        )
    return labels.astype(np.int32)


@functools.lru_cache(maxsize=8)
def _generate_fn(arch_items: tuple, dtype: str, batch_stats: bool):
    model = build_model(dict(arch_items), jnp.dtype(dtype))

    @jax.jit
    def generate(variables, latents, labels):
        if batch_stats:
            images, _ = model.apply(variables, latents, labels, train=True, mutable=["batch_stats"])
            return images
        return model.apply(variables, latents, labels, train=False)

    return generate


def iterate_generate(
    arch: dict[str, Any],
    variables: Any,
    latents: np.ndarray,
    batch_size: int = 256,
    batch_stats: bool = False,
    starts: Iterable[int] | None = None,
    labels: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Batches of float32 NHWC images in [-1, 1] for `latents` (N, nz) (and a conditional
    generator's `labels` (N,)), one compiled shape; only the batches beginning at `starts` when
    given (the same images as in a run over all of them)."""
    if arch["model"] != "generator":
        raise ValueError(f"this checkpoint holds a {arch['model']}, not a generator")
    latents = np.asarray(latents).reshape(
        len(latents), -1
    )  # (N, nz, 1, 1) as PyTorch uses is fine too
    if latents.shape[1] != arch["nz"]:
        raise ValueError(
            f"latents have {latents.shape[1]} dimensions; this generator takes nz={arch['nz']}"
        )
    labels = check_labels(arch, labels, len(latents))
    dtype = jax.tree.leaves(variables["params"])[0].dtype
    generate = _generate_fn(tuple(sorted(arch.items())), jnp.dtype(dtype).name, batch_stats)
    size = min(batch_size, len(latents))
    for start in range(0, len(latents), size) if starts is None else starts:
        chunk = latents[start : start + size].astype(dtype)
        classes = None if labels is None else labels[start : start + size]
        count = len(chunk)
        if count < size and not batch_stats:  # pad to the compiled shape; eval mode is per-example
            chunk = np.concatenate([chunk, np.zeros((size - count, chunk.shape[1]), chunk.dtype)])
            if classes is not None:
                classes = np.concatenate([classes, np.zeros(size - count, classes.dtype)])
        yield np.asarray(generate(variables, chunk, classes), np.float32)[:count]


def generate(
    checkpoint_path: str | os.PathLike,
    latents: np.ndarray | None = None,
    num: int | None = None,
    seed: int = 0,
    batch_stats: bool = False,
    use_ema: bool = True,
    batch_size: int = 256,
    labels: np.ndarray | int | None = None,
) -> np.ndarray:
    """Images (N, S, S, nc) float32 in [-1, 1] from given latents, or `num` latents drawn from
    `seed`; a conditional generator draws the classes `labels` ((N,), or one class for all)."""
    arch, variables = load_generator(checkpoint_path, use_ema)
    if latents is None:
        if num is None:
            raise ValueError("give latents or num")
        latents = sample_latents(seed, num, arch["nz"])
    if labels is not None and np.ndim(labels) == 0:
        labels = np.full(len(latents), labels, np.int32)
    batches = iterate_generate(arch, variables, latents, batch_size, batch_stats, labels=labels)
    return np.concatenate(list(batches))
