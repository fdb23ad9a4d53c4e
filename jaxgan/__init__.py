"""jaxgan: DCGAN generation and image restoration in JAX, with exact PyTorch parity."""

from __future__ import annotations

__version__ = "0.1.0"


def train(config, workdir):
    """Train (or resume) the run `config` describes in `workdir` (see `jaxgan.trainer.train`)."""
    from jaxgan.trainer import train as _train

    return _train(config, workdir)


def __getattr__(name):  # heavy modules load on first use
    if name in ("generate", "load_generator"):
        from jaxgan import sampling

        return getattr(sampling, name)
    if name == "restore":
        from jaxgan.tasks.restore.api import restore

        return restore
    if name == "Config":
        from jaxgan.config import Config

        return Config
    raise AttributeError(f"module 'jaxgan' has no attribute {name!r}")
