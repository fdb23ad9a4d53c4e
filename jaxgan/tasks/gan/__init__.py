"""The GAN task: the seed's DCGAN G and D trained adversarially (`step.gan_step`)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.config import Config, spectral_norm_of
from jaxgan.data.order import sample_latents
from jaxgan.models import Discriminator, Generator
from jaxgan.monitor import image_grid
from jaxgan.state import module_options, param_dtype, sampled_variables
from jaxgan.tasks.base import Task


def discriminator_arch(config: Config) -> dict[str, Any]:
    """D's architecture record; the options appear only when they differ from the seed's D (so that
    records written before them still describe it)."""
    arch = dict(model="discriminator", ndf=config.ndf, nc=config.nc, image_size=config.image_size)
    if config.num_classes:
        arch["num_classes"] = config.num_classes
    if spectral_norm_of(config, "discriminator"):
        arch["spectral_norm"] = "parametrizations"  # the PyTorch format it converts to by default
    if not config.discriminator_batchnorm:
        arch["batchnorm"] = False
    return arch


def build_discriminator(config: Config) -> Discriminator:
    return Discriminator(
        config.ndf,
        config.nc,
        config.image_size,
        **module_options(config),
        spectral_norm=spectral_norm_of(config, "discriminator"),
        batchnorm=config.discriminator_batchnorm,
        num_classes=config.num_classes,
    )


class GanTask(Task):
    name = "gan"
    roles = ("generator", "discriminator")
    sampled = "generator"
    torch_reference = True

    def build_models(self, config: Config) -> dict[str, Any]:
        generator = Generator(
            config.nz,
            config.ngf,
            config.nc,
            config.image_size,
            **module_options(config),
            spectral_norm=spectral_norm_of(config, "generator"),
            num_classes=config.num_classes,
            class_conditioning=config.class_conditioning,
        )
        return {"generator": generator, "discriminator": build_discriminator(config)}

    def example_inputs(self, config: Config, role: str) -> tuple:
        labels = (jnp.zeros((1,), jnp.int32),) if config.num_classes else ()
        if role == "generator":
            return (jnp.zeros((1, config.nz), param_dtype(config)), *labels)
        size = config.image_size
        return (jnp.zeros((1, size, size, config.nc), param_dtype(config)), *labels)

    def arch(self, config: Config, role: str) -> dict[str, Any]:
        if role == "generator":
            arch = dict(
                model="generator",
                nz=config.nz,
                ngf=config.ngf,
                nc=config.nc,
                image_size=config.image_size,
            )
            if config.num_classes:
                arch["num_classes"] = config.num_classes
            if config.class_conditioning != "embedding":
                arch["class_conditioning"] = config.class_conditioning
            if spectral_norm_of(config, "generator"):
                arch["spectral_norm"] = "parametrizations"
            return arch
        return discriminator_arch(config)

    def step(self, config: Config, modules: Any):
        from jaxgan.tasks.adversarial import Options
        from jaxgan.tasks.gan.augment import parse_policy
        from jaxgan.tasks.gan.step import gan_step

        return functools.partial(
            gan_step,
            modules,
            augment=parse_policy(config.augment),
            options=Options.from_config(config),
        )

    def batch_options(self, config: Config) -> dict[str, Any]:
        from jaxgan.tasks.gan.augment import augment_size

        return {
            "nz": config.nz,
            "augment_size": augment_size(config),
            "penalty_mix": config.gradient_penalty > 0,
            "batches_per_step": config.n_critic,
            "labels": config.num_classes > 0,
        }

    def make_sampler(self, config: Config, modules: Any, mesh: Any):
        """Fixed latents through the (EMA) generator in eval mode; a class-conditional one draws
        one row per class."""
        from jaxgan.sampling import class_rows

        labels, columns = (), None
        count = config.num_samples
        if config.num_classes:
            rows = class_rows(config.num_classes, config.num_samples)
            labels, count, columns = (rows,), len(rows), len(rows) // config.num_classes
        latents = sample_latents(config.seed, count, config.nz).astype(param_dtype(config))
        generate = jax.jit(
            lambda variables: modules["generator"].apply(variables, latents, *labels, train=False)
        )
        return lambda state: image_grid(
            np.asarray(jax.device_get(generate(sampled_variables(state, config))), np.float32),
            columns,
        )

    def make_evaluator(self, config: Config, modules: Any, mesh: Any):
        from jaxgan.tasks.gan.evaluate import make_training_evaluator

        return make_training_evaluator(config, modules, mesh)


TASK = GanTask()
