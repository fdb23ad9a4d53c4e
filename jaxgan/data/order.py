"""Framework-neutral randomness on the host: example order, per-example keys and latents.

Everything is numpy's counter-based Philox keyed by (seed, stream, index), so any process, device
count, loader worker or the PyTorch reference (torch_ref/train.py) draws the same numbers.
"""

from __future__ import annotations

import threading

import numpy as np

STREAM_PERMUTATION = 1
STREAM_EXAMPLE = 2  # random crops and flips of one example
STREAM_LATENTS = 3
STREAM_SAMPLE_LATENTS = 4
STREAM_AUGMENT = 5  # DiffAugment's draws (jaxgan.tasks.gan.augment)
STREAM_PENALTY_MIX = 6  # WGAN-GP's interpolation weights between real and fake images


def generator(seed: int, stream: int, index: int) -> np.random.Generator:
    """A Philox generator keyed by (seed, stream, index): 128 bits of key, no state shared."""
    if not (0 <= seed < 2**63 and 0 <= index < 2**48):
        raise ValueError(
            f"seed {seed} and index {index} must be non-negative (and below 2**63, 2**48)"
        )
    key = np.array([seed, (stream << 48) | index], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


def permutation(data_seed: int, epoch: int, num_examples: int) -> np.ndarray:
    return generator(data_seed, STREAM_PERMUTATION, epoch).permutation(num_examples)


class ExampleOrder:
    """The global stream of examples: epoch permutations laid end to end; global batch i is
    positions [i*B, (i+1)*B) of it. `examples(positions)` gives the example index at each
    position."""

    def __init__(self, num_examples: int, data_seed: int):
        if num_examples < 1:
            raise ValueError("a data set needs at least one example")
        self.num_examples, self.data_seed = num_examples, data_seed
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # loader threads share one order

    def epoch(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._cache:
                if len(self._cache) > 8:
                    self._cache.pop(min(self._cache))
                self._cache[epoch] = permutation(self.data_seed, epoch, self.num_examples)
            return self._cache[epoch]

    def example(self, position: int) -> int:
        epoch, slot = divmod(position, self.num_examples)
        return int(self.epoch(epoch)[slot])

    def positions(self, step: int, batch_size: int, rows: slice = slice(None)) -> range:
        """Global stream positions of `rows` of global batch `step`."""
        return range(step * batch_size, (step + 1) * batch_size)[rows]


def latents(
    seed: int, step: int, batch_size: int, nz: int, rows: slice = slice(None)
) -> np.ndarray:
    """The global batch's latents N(0, 1) for `step` (float64, shape (B, nz)), then this process's
    rows."""
    return generator(seed, STREAM_LATENTS, step).standard_normal((batch_size, nz))[rows]


def penalty_mix(seed: int, batch: int, batch_size: int, rows: slice = slice(None)) -> np.ndarray:
    """WGAN-GP's weights U(0, 1) of the real image in each real/fake interpolation of global batch
    `batch` (float64, shape (B,)), then this process's rows."""
    return generator(seed, STREAM_PENALTY_MIX, batch).random(batch_size)[rows]


def sample_latents(seed: int, num: int, nz: int) -> np.ndarray:
    """Fixed latents for sample grids and `scripts/sample.py --seed`: (num, nz) float64."""
    return generator(seed, STREAM_SAMPLE_LATENTS, 0).standard_normal((num, nz))
