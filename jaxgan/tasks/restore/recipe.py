"""The regression recipe of the shipped restorers' configs (configs/restore_*.py), in one place."""

from __future__ import annotations

from typing import Any


def regression_recipe(num_steps: int, **changes: Any) -> dict[str, Any]:
    """Config fields of the residual restorer's training on the built-in photos: L1, Adam 1e-3 with
    beta1 0.9, 100 warm-up steps and cosine decay to 0 at `num_steps`, 8-fold flips and rotations,
    no discriminator (lambda_adv 0), batch 16, validation PSNR every 500 steps; `changes` replace
    fields of it."""
    recipe = dict(
        task="restore",
        data="photos",
        image_size=64,
        restorer="residual",
        restorer_width=64,
        reconstruction_loss="l1",
        lambda_rec=1.0,
        lambda_adv=0.0,
        dihedral=True,
        batch_size=16,
        num_steps=num_steps,
        lr=1e-3,
        beta1=0.9,
        beta2=0.999,
        warmup_steps=100,
        lr_decay_steps=num_steps,
        lr_schedule="cosine",
        eval_every=500,
        eval_num=60,
        num_samples=16,
        sample_every=1000,
        checkpoint_every=500,
    )
    return {**recipe, **changes}
