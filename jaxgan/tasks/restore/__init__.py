"""The restoration task: the seed's restorer R (trained with a reconstruction loss and D's verdict),
its degradations, held-out data and evaluation, and `restore()` for images of any size."""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp

from jaxgan.config import Config
from jaxgan.state import module_options, param_dtype
from jaxgan.tasks.base import LOG_NAMES, Task
from jaxgan.tasks.gan import build_discriminator, discriminator_arch


class RestoreTask(Task):
    name = "restore"
    roles = ("restorer", "discriminator")
    sampled = "restorer"
    log_names = {**LOG_NAMES, "rec_loss": "loss/reconstruction", "adv_loss": "loss/adversarial"}
    shown = ("d_loss", "g_loss", "rec_loss", "d_x", "d_g_z1", "d_g_z2")
    own_fields = ("lambda_rec", "lambda_adv")

    def roles_for(self, config: Config) -> tuple[str, ...]:
        """No discriminator when its loss weighs nothing (`lambda_adv` 0): it is neither built nor
        run."""
        return self.roles if config.lambda_adv else ("restorer",)

    def build_models(self, config: Config) -> dict[str, Any]:
        from jaxgan.convert import build_model

        options = module_options(config)
        restorer = build_model(
            self.arch(config, "restorer"), options["dtype"], options["param_dtype"]
        ).clone(precision=options["precision"])
        return {"restorer": restorer, "discriminator": build_discriminator(config)}

    def example_inputs(self, config: Config, role: str) -> tuple:
        images = jnp.zeros(
            (1, config.image_size, config.image_size, config.nc), param_dtype(config)
        )
        return (
            (images, jnp.zeros(images.shape[:-1] + (1,), images.dtype))
            if role == "restorer"
            else (images,)
        )

    def arch(self, config: Config, role: str) -> dict[str, Any]:
        if role == "restorer" and config.restorer == "residual":
            return dict(
                model="residual_restorer",
                nc=config.nc,
                width=config.restorer_width,
                blocks=config.restorer_blocks,
                unshuffle=config.restorer_unshuffle,
                batchnorm=config.restorer_batchnorm,
                image_size=config.image_size,
            )
        if role == "restorer":
            return dict(
                model="restorer",
                nc=config.nc,
                width=config.restorer_width,
                image_size=config.image_size,
                skips=config.restorer_skips,
            )
        return discriminator_arch(config)

    def step(self, config: Config, modules: Any):
        from jaxgan.tasks.restore.step import restore_step

        return functools.partial(restore_step, config, modules)

    def batch_options(self, config: Config) -> dict[str, Any]:
        from jaxgan.tasks.restore.degradations import Degradation, host_transform

        return {"transform": host_transform(Degradation.from_config(config))}

    def make_sampler(self, config: Config, modules: Any, mesh: Any):
        from jaxgan.tasks.restore.grid import make_sample_grid

        return make_sample_grid(config, modules, mesh)

    def make_evaluator(self, config: Config, modules: Any, mesh: Any):
        from jaxgan.tasks.restore.evaluate import make_training_evaluator

        return make_training_evaluator(config, modules, mesh)


TASK = RestoreTask()
