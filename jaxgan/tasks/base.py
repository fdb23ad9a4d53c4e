"""The task interface: what the trainer, the sweep, checkpoints and the converter ask of a task.

A task names the models it trains (its roles, in initialisation order), which of them is sampled,
kept as an EMA and exported, builds them, and supplies the compiled step, the host's batch options,
the sample grid, the evaluator and the names it logs. The loop never compares task names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import numpy as np
from jax.sharding import Mesh

from jaxgan.config import Config

Step = Callable[[Any, dict], tuple[Any, dict]]  # (TrainState, batch) -> (TrainState, metrics)
LOG_NAMES = {
    "d_loss": "loss/d",
    "g_loss": "loss/g",
    "d_loss_real": "loss/d_real",
    "d_loss_fake": "loss/d_fake",
    "d_x": "d/x",
    "d_g_z1": "d/g_z1",
    "d_g_z2": "d/g_z2",
}


class Task:
    """One kind of training (`gan`, `restore`): subclasses fill in the class attributes and
    methods."""

    name: ClassVar[str]
    roles: ClassVar[
        tuple[str, ...]
    ]  # the models of the state, in initialisation order (key i = role i)
    sampled: ClassVar[str]  # the role sampled, averaged (EMA) and exported by default
    log_names: ClassVar[dict[str, str]] = LOG_NAMES  # step metric -> TensorBoard name
    shown: ClassVar[tuple[str, ...]] = (
        "d_loss",
        "g_loss",
        "d_x",
        "d_g_z1",
        "d_g_z2",
    )  # in the log line
    own_fields: ClassVar[tuple[str, ...]] = ()  # config fields that only this task reads
    torch_reference: ClassVar[bool] = (
        False  # whether torch_ref/train.py trains it (whole-state conversion)
    )

    def roles_for(self, config: Config) -> tuple[str, ...]:
        """The roles a run of `config` trains (a subset of `roles`, in their order)."""
        return self.roles

    def build_models(self, config: Config) -> dict[str, nn.Module]:
        raise NotImplementedError

    def example_inputs(self, config: Config, role: str) -> tuple:
        """Inputs of batch 1 that initialise the model `role`."""
        raise NotImplementedError

    def arch(self, config: Config, role: str) -> dict[str, Any]:
        """The architecture record of model `role`, as `jaxgan.convert` reads it off a state
        dict."""
        raise NotImplementedError

    def step(self, config: Config, modules: Any) -> Step:
        raise NotImplementedError

    def batch_options(self, config: Config) -> dict[str, Any]:
        """What the host adds to each batch (`jaxgan.data.pipeline.Batches` options): latents' `nz`,
        augmentation draws' `augment_size`, a `transform`."""
        return {}

    def make_sampler(self, config: Config, modules: Any, mesh: Mesh) -> Callable[[Any], np.ndarray]:
        """state -> a uint8 sample grid (`jaxgan.monitor.image_grid`)."""
        raise NotImplementedError

    def make_evaluator(self, config: Config, modules: Any, mesh: Mesh) -> Callable | None:
        """(state, step) -> {TensorBoard name: value}, or None when nothing can be measured."""
        return None
