"""Inpainting of Context Encoders' centre square (Pathak et al. 2016) on 64x64 crops of the built-in
photos.

Loss 0.999 x L2 over the hole + 0.001 x adversarial, Adam 2e-4 / (0.5, 0.999); held-out PSNR every
1,000 steps.
"""

from jaxgan.config import Config


def get_config() -> Config:
    return Config(
        task="restore",
        data="photos",
        image_size=64,
        nc=3,
        degradation="centre_square",
        reconstruction_loss="l2",
        lambda_rec=0.999,
        lambda_adv=0.001,
        restorer_width=64,
        restorer_skips=True,
        ndf=64,
        batch_size=64,
        num_steps=20_000,
        lr=2e-4,
        beta1=0.5,
        beta2=0.999,
        eval_every=1000,
        eval_num=300,
        num_samples=16,
    )
