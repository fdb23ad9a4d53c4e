"""The input pipeline: this process's rows of every global batch, prefetched by grain's threads.

Global batch i is a fixed slice of the example stream (`order.ExampleOrder`); an example that fails
to decode is replaced by the next decodable one of the stream, the same way in every process, so the
batches do not depend on device, process or worker counts, nor on resuming. The position in the
stream is the step times the batches a step reads (`n_critic` for a GAN), which checkpoints save.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator

import grain
import numpy as np

from jaxgan.data import order
from jaxgan.data.order import ExampleOrder, latents
from jaxgan.data.sources import Source
from jaxgan.tasks.gan.augment import draws as augment_draws


def keyed_draws(
    seed: int,
    batch: int,
    batch_size: int,
    rows: slice,
    nz: int,
    augment_size: int,
    dtype: np.dtype,
    penalty_mix: bool = False,
) -> dict[str, np.ndarray]:
    """The random inputs of global batch `batch` keyed by (seed, batch), this process's `rows`:
    latents (b, nz) when nz > 0, DiffAugment's draws (b, USES, NUM_DRAWS) for images of side
    `augment_size` when it is > 0, WGAN-GP's interpolation weights (b,) when `penalty_mix`."""
    drawn = {}
    if nz:
        drawn["latents"] = latents(seed, batch, batch_size, nz, rows).astype(dtype)
    if augment_size:
        drawn["augment"] = augment_draws(seed, batch, batch_size, augment_size, rows).astype(dtype)
    if penalty_mix:
        drawn["penalty_mix"] = order.penalty_mix(seed, batch, batch_size, rows).astype(dtype)
    return drawn


def per_step(
    make: Callable[[int], dict[str, np.ndarray]], step: int, batches_per_step: int
) -> dict[str, np.ndarray]:
    """What step `step` reads: global batch `step` itself, or with `batches_per_step` = n > 1
    (n critic updates a step) batches step*n .. step*n + n-1 stacked on axis 1, so that every
    array keeps its rows (the sharded axis) first: (b, n, ...)."""
    if batches_per_step == 1:
        return make(step)
    parts = [make(step * batches_per_step + i) for i in range(batches_per_step)]
    return {key: np.stack([part[key] for part in parts], axis=1) for key in parts[0]}


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
    """Host batches {"images": uint8 (b, S, S, nc)[, "labels": int32 (b,)][, "latents": (b, nz)][,
    "augment"][, "penalty_mix"]} for steps [start, stop) (with `batches_per_step` n > 1: (b, n,
    ...) each).

    Latents and the other draws (`keyed_draws`) are keyed by `latent_seed` and the global batch's
    index, which is the step when a step reads one batch.
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
        penalty_mix: bool = False,
        batches_per_step: int = 1,
        labels: bool = False,
    ):
        self.source, self.batch_size, self.rows, self.labels = source, batch_size, rows, labels
        self.penalty_mix, self.batches_per_step = penalty_mix, batches_per_step
        self.transform = (
            transform  # optional host-side hook on each batch (e.g. JPEG-degraded copies)
        )
        self.order = ExampleOrder(len(source), data_seed)
        self.latent_seed, self.nz, self.latent_dtype = latent_seed, nz, latent_dtype
        self.augment_size = augment_size
        self.skipped: dict[int, str] = {}  # index -> reason, for examples that failed to decode
        self._lock = threading.Lock()

    def example(self, position: int) -> tuple[int, np.ndarray]:
        """(index, pixels) of the example at a stream position, or of the next decodable one after
        it."""
        for offset in range(len(self.source)):
            index = self.order.example(position + offset)
            if index in self.skipped:
                continue
            try:
                return index, self.source.load(index, position)
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

    def global_batch(self, index: int) -> dict[str, np.ndarray]:
        """This process's rows of global batch `index` of the stream, with their draws."""
        positions = self.order.positions(index, self.batch_size, self.rows)
        indices, pixels = zip(*(self.example(p) for p in positions))
        batch = {"images": np.stack(pixels)}
        if self.labels:
            batch["labels"] = np.array([self.source.label(i) for i in indices], np.int32)
        batch.update(
            keyed_draws(
                self.latent_seed,
                index,
                self.batch_size,
                self.rows,
                self.nz,
                self.augment_size,
                self.latent_dtype,
                self.penalty_mix,
            )
        )
        return self.transform(batch) if self.transform is not None else batch

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """What step `step` reads (`per_step`)."""
        return per_step(self.global_batch, step, self.batches_per_step)

    def iterate(
        self, start: int, stop: int, threads: int = 8, prefetch: int = 16
    ) -> Iterator[dict[str, np.ndarray]]:
        """Batches of steps start..stop-1, in order, decoded ahead by `threads` threads."""
        return prefetched(self.batch, start, stop, threads, prefetch)
