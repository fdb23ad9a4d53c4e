"""The restoration sample grid: damaged | restored | original triples of fixed held-out crops."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgan.config import Config
from jaxgan.monitor import image_grid
from jaxgan.state import Modules, TrainState, sampled_variables
from jaxgan.tasks.restore.degradations import Degradation
from jaxgan.tasks.restore.heldout import held_out_batch
from jaxgan.tasks.restore.step import eval_restore_fn


def make_sample_grid(config: Config, modules: Modules, mesh: Mesh):
    """state -> uint8 grid of damaged | restored | original triples of fixed held-out crops (EMA
    when kept)."""
    clean, damaged, mask = held_out_batch(config, config.num_samples)
    run = eval_restore_fn(modules)
    per_row = max(1, min(4, len(clean)))

    def sample(state: TrainState) -> np.ndarray:
        variables = sampled_variables(state, config)
        restored = np.asarray(jax.device_get(run(variables, damaged, mask)), np.float32)
        shown = damaged.copy()
        if Degradation.from_config(
            config
        ).is_inpainting:  # holes shown white, as a mask file marks them
            shown = np.where(mask > 0.5, 1.0, shown)
        triples = np.stack([shown, restored, clean], axis=1).reshape((-1,) + clean.shape[1:])
        return image_grid(triples.astype(np.float32), columns=3 * per_row)

    return sample
