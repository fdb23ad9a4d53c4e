"""The seed's set-up: DCGAN 64x64 (nz 100, ngf = ndf = 64), Adam 2e-4 / (0.5, 0.999), BCE, batch 64."""

from jaxgan.config import Config


def get_config() -> Config:
    return Config(task="gan", image_size=64, nc=3, nz=100, ngf=64, ndf=64, batch_size=64, num_steps=10_000,
                  lr=2e-4, beta1=0.5, beta2=0.999)
