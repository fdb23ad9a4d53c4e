"""The seed's set-up: DCGAN 64x64 (nz 100, ngf = ndf = 64), Adam 2e-4 / (0.5, 0.999), BCE, batch 64.

Around the seed's G, D and optimiser, two measured choices (docs/results.md, "Why the seed's recipe
fails on the built-in digits"): DiffAugment of D's inputs, without which D wins within a hundred
steps on 1,500 digits, and an EMA of G's parameters for samples and evaluation. With the built-in
digits, digits-FID and modes are measured every 2,000 steps and at the end.
"""

from jaxgan.config import Config


def get_config() -> Config:
    return Config(
        task="gan",
        image_size=64,
        nc=3,
        nz=100,
        ngf=64,
        ndf=64,
        batch_size=64,
        num_steps=10_000,
        lr=2e-4,
        beta1=0.5,
        beta2=0.999,
        augment="color,translation,cutout",
        ema_decay=0.999,
        eval_every=2000,
    )
