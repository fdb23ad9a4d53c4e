"""The input pipeline: this process's rows of every global batch, prefetched by grain's threads.

Global batch i is a fixed slice of the example stream (`order.ExampleOrder`); an example that fails
to decode is replaced by the next decodable one of the stream, the same way in every process, so the
batches do not depend on device, process or worker counts, nor on resuming. The position in the
stream is the step, which checkpoints save.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator

import grain
import numpy as np

from jaxgan.data.order import ExampleOrder, latents
from jaxgan.data.sources import Source
from jaxgan.tasks.gan.augment import draws as augment_draws


def keyed_draws(
    seed: int, step: int, batch_size: int, rows: slice, nz: int, augment_size: int, dtype: np.dtype
) -> dict[str, np.ndarray]:
    """The random inputs of step `step` keyed by (seed, step), this process's `rows`: latents
    (b, nz) when nz > 0, DiffAugment's draws (b, USES, NUM_DRAWS) for images of side `augment_size`
    when it is > 0."""
    drawn = {}
    if nz:
        drawn["latents"] = latents(seed, step, batch_size, nz, rows).astype(dtype)
    if augment_size:
        drawn["augment"] = augment_draws(seed, step, batch_size, augment_size, rows).astype(dtype)
    return drawn


def prefetched(
    batch: Callable[[int], dict[str, np.ndarray]],
    start: int,
    stop: int,
    threads: int,
    prefetch: int,
) -> Iterator[dict[str, np.ndarray]]:
    """`batch(step)` for steps start..stop-1, in order, made ahead by `threads` grain threads (in
    this thread when `threads` is 0)."""
    if threads <= 0:
        return (batch(step) for step in range(start, stop))
    dataset = grain.MapDataset.range(start, stop).map(batch)
    options = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch)
    return iter(dataset.to_iter_dataset(options))


class Batches:
    """Host batches {"images": uint8 (b, S, S, nc)[, "latents": (b, nz)][, "augment"]} for steps
    [start, stop).

    Latents and augmentation draws (`keyed_draws`) are keyed by `latent_seed` and the step.
    """

    def __init__(
        self,
        source: Source,
        batch_size: int,
        data_seed: int,
        rows: slice = slice(None),
        latent_seed: int | None = None,
        nz: int = 0,
        latent_dtype: np.dtype = np.float32,
        transform: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
        augment_size: int = 0,
    ):
        self.source, self.batch_size, self.rows = source, batch_size, rows
        self.transform = (
            transform  # optional host-side hook on each batch (e.g. JPEG-degraded copies)
        )
        self.order = ExampleOrder(len(source), data_seed)
        self.latent_seed, self.nz, self.latent_dtype = latent_seed, nz, latent_dtype
        self.augment_size = augment_size
        self.skipped: dict[int, str] = {}  # index -> reason, for examples that failed to decode
        self._lock = threading.Lock()

    def example(self, position: int) -> np.ndarray:
        """The example at a stream position, or the next decodable one after it."""
        for offset in range(len(self.source)):
            index = self.order.example(position + offset)
            if index in self.skipped:
                continue
            try:
                return self.source.load(index, position)
            except Exception as error:  # a corrupt file must never end a long run
                with self._lock:
                    if index not in self.skipped:
                        self.skipped[index] = str(error)
                        warnings.warn(
                            f"skipping unreadable example {index} ({error}); "
                            f"{len(self.skipped)} skipped so far",
                            stacklevel=2,
                        )
        raise RuntimeError(
            f"no example of {self.source.describe()} could be decoded "
            f"(first errors: {list(self.skipped.values())[:3]})"
        )

    def batch(self, step: int) -> dict[str, np.ndarray]:
        positions = self.order.positions(step, self.batch_size, self.rows)
        batch = {"images": np.stack([self.example(p) for p in positions])}
        batch.update(
            keyed_draws(
                self.latent_seed,
                step,
                self.batch_size,
                self.rows,
                self.nz,
                self.augment_size,
                self.latent_dtype,
            )
        )
        return self.transform(batch) if self.transform is not None else batch

    def iterate(
        self, start: int, stop: int, threads: int = 8, prefetch: int = 16
    ) -> Iterator[dict[str, np.ndarray]]:
        """Batches of steps start..stop-1, in order, decoded ahead by `threads` threads."""
        return prefetched(self.batch, start, stop, threads, prefetch)
