"""Flax models: the DCGAN generator and discriminator and the restorer, NHWC, PyTorch-compatible."""

from jaxgan.models.discriminator import Discriminator
from jaxgan.models.generator import Generator
from jaxgan.models.restorer import ResidualRestorer, Restorer

__all__ = ["Discriminator", "Generator", "ResidualRestorer", "Restorer"]
