"""Restoration metrics: PSNR and SSIM of the restorer and of classical baselines on held-out crops.

Clean held-out crops (`heldout.held_out_crops`) are degraded with a fixed seed; every method's output
is rounded to 8 bits (as a saved file is) and compared with the clean crop. Inpainting also reports
hole-only PSNR (the error over the missing pixels alone: about 6 dB below whole-image PSNR for a
centre square, whose hole is a quarter of the image); super-resolution also reports PSNR and SSIM on
BT.601 Y with a border of the scale factor cropped, as super-resolution papers do.
"""

from __future__ import annotations

import dataclasses
import json as json_lib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.atomic import atomic_path
from jaxgan.config import Config
from jaxgan.metrics.image import psnr, ssim
from jaxgan.restoration.baselines import baselines
from jaxgan.restoration.degradations import Degradation, downsample, jpeg_compress
from jaxgan.restoration.heldout import held_out_crops
from jaxgan.restoration.train_step import SAMPLE_KEY, eval_restore_fn, held_out_batch
from jaxgan.state import Models, sample_variables

EVAL_BATCH = 100


def scores(restored: np.ndarray, clean: np.ndarray, mask: np.ndarray, degradation: Degradation) -> dict[str, float]:
    """Mean metrics of [0, 1] NHWC images, rounded to 8 bits first."""
    restored = np.round(np.clip(restored, 0, 1) * 255) / 255
    clean_j, restored_j = jnp.asarray(clean, jnp.float32), jnp.asarray(restored, jnp.float32)
    result = {"psnr": float(jnp.mean(psnr(restored_j, clean_j))), "ssim": float(jnp.mean(ssim(restored_j, clean_j)))}
    if degradation.is_inpainting:
        result["psnr_hole"] = float(jnp.mean(psnr(restored_j, clean_j, mask=jnp.asarray(mask))))
    if degradation.name == "downsample" and clean.shape[-1] == 3:
        border = degradation.scale_factor
        result["psnr_y"] = float(jnp.mean(psnr(restored_j, clean_j, crop_border=border, y_channel=True)))
        result["ssim_y"] = float(jnp.mean(ssim(restored_j, clean_j, crop_border=border, y_channel=True)))
    return result


def digits_kid(outputs: dict[str, np.ndarray], clean: np.ndarray, seed: int) -> dict[str, float]:
    """digits-KID (the shipped classifier's features) of each method's [0, 1] outputs against the clean
    crops: how digit-like the restorations are, beside how close (PSNR) they are."""
    from jaxgan.metrics.digits import DigitsClassifier
    from jaxgan.metrics.kid import kernel_inception_distance

    classifier = DigitsClassifier()
    reference = classifier(np.asarray(clean * 2 - 1, np.float32))
    return {name: kernel_inception_distance(classifier(np.asarray(np.clip(output, 0, 1) * 2 - 1, np.float32)),
                                            reference, seed=seed)[0] for name, output in outputs.items()}


def make_training_evaluator(config: Config, models: Models, mesh):
    """(state, step) -> held-out {"eval/psnr", "eval/ssim"[, "eval/psnr_hole"]} of the (EMA) restorer."""
    clean, damaged, mask = held_out_batch(config, config.eval_num)
    degradation = Degradation.from_config(config)
    run = eval_restore_fn(models)

    def evaluate(state, step: int) -> dict[str, float]:
        variables = sample_variables(state, config.ema_decay > 0)
        restored = np.concatenate([np.asarray(jax.device_get(run(variables, damaged[i:i + EVAL_BATCH],
                                                                  mask[i:i + EVAL_BATCH])), np.float32)
                                   for i in range(0, len(clean), EVAL_BATCH)])
        values = scores((restored + 1) / 2, (clean + 1) / 2, mask, degradation)
        return {f"eval/{name}": value for name, value in values.items()}

    return evaluate


def _degrade(degradation: Degradation, crops: np.ndarray, seed: int):
    clean = jnp.asarray(crops, jnp.float32) / 127.5 - 1
    host = jnp.asarray(jpeg_compress(crops, degradation.jpeg_quality), jnp.float32) / 127.5 - 1 \
        if degradation.on_host else None
    key = jax.random.fold_in(jax.random.key(seed), SAMPLE_KEY)
    damaged, mask = jax.jit(degradation.apply)(key, clean, host)
    low = downsample(clean, degradation.scale_factor, degradation.downsampler) \
        if degradation.name == "downsample" else None
    unit = [None if a is None else (np.asarray(a, np.float32) + 1) / 2 for a in (clean, damaged, low)]
    return unit[0], unit[1], np.asarray(mask, np.float32), unit[2]


def evaluate_restoration(degradation: str, checkpoint: str | None = None, data: str = "photos",
                         num_crops: int = 200, seed: int = 0, json: str | None = None, image_size: int = 64,
                         nc: int = 3, noise_sigma: float = 25.0, scale_factor: int = 4, downsampler: str = "bicubic",
                         jpeg_quality: int = 20, baselines_only: bool = False, use_ema: bool = True,
                         gan_prior: str | None = None, discriminator: str | None = None, gan_prior_steps: int = 1000,
                         print_table: bool = True) -> dict[str, Any]:
    """Degrade `num_crops` held-out crops of `data` with `seed`; PSNR/SSIM of the restorer at `checkpoint`
    (its own degradation settings), of the classical baselines and, for inpainting with `gan_prior` (a GAN
    workdir, or a converted generator with `discriminator`), of Yeh et al.'s GAN-prior inpainting.
    Prints a markdown table; writes JSON."""
    from jaxgan.restoration.api import load_restorer

    restorer = prior = None
    settings = Degradation(degradation, image_size, noise_sigma, scale_factor, downsampler, jpeg_quality)
    if gan_prior:
        from jaxgan.restoration.gan_prior import load_gan

        if not settings.is_inpainting:
            raise ValueError(f"the GAN prior inpaints; {degradation!r} is not an inpainting degradation")
        prior = load_gan(gan_prior, discriminator, use_ema)
        image_size, nc = prior.image_size, prior.nc
        settings = dataclasses.replace(settings, image_size=image_size)
    if checkpoint:
        restorer = load_restorer(checkpoint, use_ema)
        if restorer.config is not None:
            settings = Degradation.from_config(restorer.config)
            if settings.name != degradation:
                raise ValueError(f"{checkpoint} was trained for {settings.name!r}, not {degradation!r}")
        settings = Degradation(settings.name, restorer.image_size, settings.noise_sigma, settings.scale_factor,
                               settings.downsampler, settings.jpeg_quality)
        nc = restorer.nc
        if prior is not None and (prior.image_size, prior.nc) != (restorer.image_size, restorer.nc):
            raise ValueError(f"{gan_prior} makes {prior.image_size}px images of {prior.nc} channel(s) but {checkpoint} "
                             f"restores {restorer.image_size}px, {restorer.nc}: compare them separately")
    crops = held_out_crops(data, settings.image_size, nc, num_crops, seed)
    clean, damaged, mask, low = _degrade(settings, crops, seed)
    input_name = {"downsample": "bicubic (the damaged input)", "jpeg": "JPEG (the damaged input)"}.get(
        settings.name, "damaged input")
    rows: dict[str, dict[str, Any]] = {input_name: scores(damaged, clean, mask, settings)}
    outputs = {input_name: damaged}  # [0, 1] images of every method, for digits-KID

    def record(name: str, restore: Callable[[], np.ndarray]) -> None:
        """Time `restore` (-> [0, 1] images), score its images and keep them."""
        start = time.perf_counter()
        outputs[name] = restore()
        seconds = time.perf_counter() - start
        rows[name] = {**scores(outputs[name], clean, mask, settings), "ms_per_image": 1000 * seconds / len(clean)}

    skipped = {}
    for name, (method, reason) in baselines(settings).items():
        if method is None:
            skipped[name] = reason
        else:  # known pixels kept, as the restorer keeps them
            record(name, lambda method=method: mask * method(damaged, mask, low) + (1 - mask) * damaged)
    if restorer is not None and not baselines_only:
        record(f"restorer ({Path(checkpoint).name})", lambda: (restorer.restore_batches(damaged * 2 - 1, mask) + 1) / 2)
    if prior is not None:
        from jaxgan.restoration.gan_prior import gan_prior_inpaint

        record(f"GAN prior ({Path(gan_prior).name}, {gan_prior_steps} steps)",
               lambda: (gan_prior_inpaint(damaged * 2 - 1, mask, prior, steps=gan_prior_steps, seed=seed)[0] + 1) / 2)
    if data == "digits" and len(clean) >= 2:
        for name, kid in digits_kid(outputs, clean, seed).items():
            rows[name]["digits_kid"] = kid
    report = {"degradation": settings.describe(), "settings": settings.__dict__, "data": data or "photos",
              "num_crops": num_crops, "seed": seed, "image_size": settings.image_size, "nc": nc,
              "checkpoint": checkpoint, "results": rows, "skipped": skipped}
    if print_table:
        print(markdown_table(report))
    if json:
        with atomic_path(json) as temporary:
            temporary.write_text(json_lib.dumps(report, indent=2))
    return report


def markdown_table(report: dict[str, Any]) -> str:
    columns = [c for c in ("psnr", "psnr_hole", "ssim", "psnr_y", "ssim_y", "digits_kid", "ms_per_image")
               if any(c in row for row in report["results"].values())]
    titles = {"psnr": "PSNR (dB)", "psnr_hole": "hole PSNR (dB)", "ssim": "SSIM", "psnr_y": "Y PSNR (dB)",
              "ssim_y": "Y SSIM", "digits_kid": "digits-KID", "ms_per_image": "ms / image"}
    lines = [f"{report['degradation']}: {report['num_crops']} held-out {report['image_size']}x{report['image_size']} "
             f"crops of {report['data']} (seed {report['seed']})", "",
             "| method | " + " | ".join(titles[c] for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for name, row in report["results"].items():
        cells = [("" if c not in row else f"{row[c]:.4f}" if c.startswith(("ssim", "digits")) else f"{row[c]:.2f}")
                 for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [f"| {name} | skipped: {reason} |" + " |" * (len(columns) - 1) for name, reason in
              report["skipped"].items()]
    return "\n".join(lines)
