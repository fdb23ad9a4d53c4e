"""DCGAN 128x128: one stride-2 layer more in G and D than dcgan64; otherwise the seed's set-up."""

from jaxgan.config import Config


def get_config() -> Config:
    return Config(
        task="gan",
        image_size=128,
        nc=3,
        nz=100,
        ngf=64,
        ndf=64,
        batch_size=64,
        num_steps=10_000,
        lr=2e-4,
        beta1=0.5,
        beta2=0.999,
        eval_every=2000,
    )
