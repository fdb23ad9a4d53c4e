"""Denoising of additive Gaussian noise (sigma 25 on the 0..255 scale) on 64x64 crops of the
built-in photos.

Loss: L2 over the whole image only (lambda_adv 0): Context Encoders' 0.001 x adversarial measured
0.2 dB lower at 1,500 steps (docs/results.md); add it back with --config.lambda_adv=0.001 for
GAN-style texture.
"""

from jaxgan.config import Config


def get_config() -> Config:
    return Config(
        task="restore",
        data="photos",
        image_size=64,
        nc=3,
        degradation="noise",
        noise_sigma=25.0,
        reconstruction_loss="l2",
        lambda_rec=0.999,
        lambda_adv=0.0,
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
