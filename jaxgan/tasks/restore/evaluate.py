"""Evaluation during restoration training: held-out PSNR/SSIM of the (EMA) restorer every
`eval_every` steps, on fixed crops degraded with a fixed key (`heldout.held_out_batch`)."""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgan.config import Config
from jaxgan.state import Modules, sampled_variables
from jaxgan.tasks.restore.degradations import Degradation
from jaxgan.tasks.restore.heldout import held_out_batch
from jaxgan.tasks.restore.scores import scores
from jaxgan.tasks.restore.step import eval_restore_fn

EVAL_BATCH = 100


def make_training_evaluator(config: Config, modules: Modules, mesh: Mesh):
    """(state, step) -> held-out {"eval/psnr", "eval/ssim"[, "eval/psnr_hole"]} of the (EMA)
    restorer."""
    clean, damaged, mask = held_out_batch(config, config.eval_num)
    degradation = Degradation.from_config(config)
    run = eval_restore_fn(modules)

    def evaluate(state, step: int) -> dict[str, float]:
        variables = sampled_variables(state, config)
        restored = np.concatenate(
            [
                np.asarray(
                    jax.device_get(
                        run(variables, damaged[i : i + EVAL_BATCH], mask[i : i + EVAL_BATCH])
                    ),
                    np.float32,
                )
                for i in range(0, len(clean), EVAL_BATCH)
            ]
        )
        values = scores((restored + 1) / 2, (clean + 1) / 2, mask, degradation)
        return {f"eval/{name}": value for name, value in values.items()}

    return evaluate
