"""Grayscale (nc=1) denoising for medical-style scans: sigma 25 on 64x64 crops.

By default the built-in photos are read as BT.601 luma; point `--config.data` at a folder of scans
(8-bit or 16-bit PNG/TIFF, read at their bit depth) to train on your own. L2 only, as
restore_denoise64.
"""

from jaxgan.config import Config


def get_config() -> Config:
    return Config(
        task="restore",
        data="photos",
        image_size=64,
        nc=1,
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
