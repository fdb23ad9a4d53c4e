"""The restoration benchmark (`scripts/evaluate.py restore`): the restorer against classical
baselines on held-out crops.

Clean held-out crops (`heldout.held_out_crops`) are degraded with a fixed seed; every method's
output is rounded to 8 bits (as a saved file is) and compared with the clean crop. Inpainting also
reports hole-only PSNR (the error over the missing pixels alone: about 6 dB below whole-image PSNR
for a centre square, whose hole is a quarter of the image); super-resolution also reports PSNR and
SSIM on BT.601 Y with a border of the scale factor cropped, as super-resolution papers do.
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
from jaxgan.data.images import to_model_range
from jaxgan.tasks.restore.baselines import baselines, bm3d_denoise, nl_means
from jaxgan.tasks.restore.degradations import (
    INPAINTING,
    Degradation,
    downsample,
    jpeg_compress,
)
from jaxgan.tasks.restore.heldout import SAMPLE_KEY, held_out_crops
from jaxgan.tasks.restore.scores import digits_kid, scores


def _degrade(degradation: Degradation, crops: np.ndarray, seed: int):
    clean = to_model_range(jnp.asarray(crops), jnp.float32)
    host = (
        to_model_range(jnp.asarray(jpeg_compress(crops, degradation.jpeg_quality)), jnp.float32)
        if degradation.on_host
        else None
    )
    key = jax.random.fold_in(jax.random.key(seed), SAMPLE_KEY)
    damaged, mask = jax.jit(degradation.apply)(key, clean, host)
    low = (
        downsample(clean, degradation.scale_factor, degradation.downsampler)
        if degradation.name == "downsample"
        else None
    )
    unit = [
        None if a is None else (np.asarray(a, np.float32) + 1) / 2 for a in (clean, damaged, low)
    ]
    return unit[0], unit[1], np.asarray(mask, np.float32), unit[2]


def evaluated_degradation(
    config: Any, degradation: str, noise_sigma: float, checkpoint: str
) -> Degradation:
    """The degradation a trained restorer is evaluated on: its training one, at `noise_sigma` for a
    blind denoiser and with `degradation`'s holes for a mixed-hole inpainter."""
    settings = Degradation.from_config(config)
    if config.noise_sigma_max and settings.name == "noise":
        settings = dataclasses.replace(settings, noise_sigma=float(noise_sigma))
    if settings.name == "mixed_holes" and degradation in INPAINTING:
        settings = dataclasses.replace(settings, name=degradation)
    if settings.name != degradation:
        raise ValueError(f"{checkpoint} was trained for {settings.name!r}, not {degradation!r}")
    return settings


def evaluate_restoration(
    degradation: str,
    checkpoint: str | None = None,
    data: str = "photos",
    num_crops: int = 200,
    seed: int = 0,
    split: str = "test",
    model: str | None = None,
    ensemble: bool = False,
    nlm_strength: float | None = None,
    json: str | None = None,
    image_size: int = 64,
    nc: int = 3,
    noise_sigma: float = 25.0,
    scale_factor: int = 4,
    downsampler: str = "bicubic",
    jpeg_quality: int = 20,
    baselines_only: bool = False,
    use_ema: bool = True,
    gan_prior: str | None = None,
    discriminator: str | None = None,
    gan_prior_steps: int = 1000,
    print_table: bool = True,
) -> dict[str, Any]:
    """Degrade `num_crops` crops of a held-out `split` ("test" for tables, "validation" for
    choices) of `data` with `seed`; PSNR/SSIM of the restorer at `checkpoint` or shipped as `model`
    (its own degradation settings; a blind denoiser at `noise_sigma`, a mixed-hole inpainter on
    `degradation`'s holes), with `ensemble` also of its 8-fold self-ensemble, of the classical
    baselines and, for inpainting with `gan_prior` (a GAN workdir, or a converted generator with
    `discriminator`), of Yeh et al.'s GAN-prior inpainting. Prints a markdown table; writes
    JSON."""
    from jaxgan.tasks.restore.api import load_restorer

    restorer = prior = None
    settings = Degradation(
        degradation, image_size, noise_sigma, scale_factor, downsampler, jpeg_quality
    )
    if gan_prior:
        from jaxgan.tasks.restore.gan_prior import load_gan

        if not settings.is_inpainting:
            raise ValueError(
                f"the GAN prior inpaints; {degradation!r} is not an inpainting degradation"
            )
        prior = load_gan(gan_prior, discriminator, use_ema)
        image_size, nc = prior.image_size, prior.nc
        settings = dataclasses.replace(settings, image_size=image_size)
    if checkpoint or model:
        restorer = load_restorer(checkpoint, use_ema, model)
        checkpoint = checkpoint or model
        if restorer.config is not None:
            settings = evaluated_degradation(restorer.config, degradation, noise_sigma, checkpoint)
        settings = dataclasses.replace(
            settings, image_size=restorer.image_size, hole_fill=restorer.hole_fill
        )
        nc = restorer.nc
        if prior is not None and (prior.image_size, prior.nc) != (restorer.image_size, restorer.nc):
            raise ValueError(
                f"{gan_prior} makes {prior.image_size}px images of {prior.nc} channel(s) but "
                f"{checkpoint} "
                f"restores {restorer.image_size}px, {restorer.nc}: compare them separately"
            )
    crops = held_out_crops(data, settings.image_size, nc, num_crops, seed, split)
    clean, damaged, mask, low = _degrade(settings, crops, seed)
    input_name = {
        "downsample": "bicubic (the damaged input)",
        "jpeg": "JPEG (the damaged input)",
    }.get(settings.name, "damaged input")
    if settings.is_inpainting and settings.hole_fill == "harmonic":
        input_name = "harmonic fill (jaxgan, on the device: the restorer's input)"
    rows: dict[str, dict[str, Any]] = {input_name: scores(damaged, clean, mask, settings)}
    outputs = {input_name: damaged}  # [0, 1] images of every method, for digits-KID

    def record(name: str, restore: Callable[[], np.ndarray]) -> None:
        """Time `restore` (-> [0, 1] images), score its images and keep them."""
        start = time.perf_counter()
        outputs[name] = restore()
        seconds = time.perf_counter() - start
        rows[name] = {
            **scores(outputs[name], clean, mask, settings),
            "ms_per_image": 1000 * seconds / len(clean),
        }

    skipped = {}
    for name, (method, reason) in baselines(settings, nlm_strength, nc).items():
        if method is None:
            skipped[name] = reason
        else:  # known pixels kept, as the restorer keeps them
            record(
                name, lambda method=method: mask * method(damaged, mask, low) + (1 - mask) * damaged
            )
    if restorer is not None and not baselines_only:
        label = f"restorer ({Path(checkpoint).name})"
        record(label, lambda: (restorer.restore_batches(damaged * 2 - 1, mask) + 1) / 2)
        if ensemble:
            record(
                f"{label} + 8-fold self-ensemble",
                lambda: (restorer.restore_batches(damaged * 2 - 1, mask, ensemble=True) + 1) / 2,
            )
    if prior is not None:
        from jaxgan.tasks.restore.gan_prior import gan_prior_inpaint

        record(
            f"GAN prior ({Path(gan_prior).name}, {gan_prior_steps} steps)",
            lambda: (
                (
                    gan_prior_inpaint(
                        damaged * 2 - 1, mask, prior, steps=gan_prior_steps, seed=seed
                    )[0]
                    + 1
                )
                / 2
            ),
        )
    if data == "digits" and len(clean) >= 2:
        for name, kid in digits_kid(outputs, clean, seed).items():
            rows[name]["digits_kid"] = kid
    report = {
        "degradation": settings.describe(),
        "settings": settings.__dict__,
        "data": data or "photos",
        "num_crops": num_crops,
        "seed": seed,
        "split": split,
        "image_size": settings.image_size,
        "nc": nc,
        "checkpoint": checkpoint,
        "results": rows,
        "skipped": skipped,
    }
    if print_table:
        print(markdown_table(report))
    if json:
        with atomic_path(json) as temporary:
            temporary.write_text(json_lib.dumps(report, indent=2))
    return report


def markdown_table(report: dict[str, Any]) -> str:
    columns = [
        c
        for c in ("psnr", "psnr_hole", "ssim", "psnr_y", "ssim_y", "digits_kid", "ms_per_image")
        if any(c in row for row in report["results"].values())
    ]
    titles = {
        "psnr": "PSNR (dB)",
        "psnr_hole": "hole PSNR (dB)",
        "ssim": "SSIM",
        "psnr_y": "Y PSNR (dB)",
        "ssim_y": "Y SSIM",
        "digits_kid": "digits-KID",
        "ms_per_image": "ms / image",
    }
    lines = [
        f"{report['degradation']}: {report['num_crops']} held-out "
        f"{report['image_size']}x{report['image_size']} crops of {report['data']} "
        f"({report.get('split', 'test')} split, seed {report['seed']})",
        "",
        "| method | " + " | ".join(titles[c] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, row in report["results"].items():
        cells = [
            (
                ""
                if c not in row
                else f"{row[c]:.4f}"
                if c.startswith(("ssim", "digits"))
                else f"{row[c]:.2f}"
            )
            for c in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        f"| {name} | skipped: {reason} |" + " |" * (len(columns) - 1)
        for name, reason in report["skipped"].items()
    ]
    return "\n".join(lines)


SPEED_SIDE = 1024  # restore-speed images: 1024 x 1024 outputs (1.05 megapixels)


def speed_input(method: str) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(uint8 input, mask or None, scale) of the restore-speed benchmark: a 1024 x 1024 crop
    of scikit-image's retina (its luma for 1-channel models), degraded for `method`'s task."""
    from jaxgan.data import sources
    from jaxgan.data.images import to_channels

    photo = sources.photo("retina")[:SPEED_SIDE, :SPEED_SIDE].astype(np.float32) / 255
    if method == "denoise-gray":
        photo = to_channels(photo, 1)
    rng = np.random.default_rng(0)
    if method in ("sr4x", "sr2x"):
        scale = int(method[2])
        low = downsample(jnp.asarray(photo[None] * 2 - 1), scale)
        return np.round((np.asarray(low[0]) + 1) * 127.5).astype(np.uint8), None, scale
    if method == "inpaint":
        mask = _strokes_mask(SPEED_SIDE)
        return np.round(photo * 255).astype(np.uint8), mask, 1
    noisy = np.clip(photo + rng.normal(0, 25 / 255, photo.shape), 0, 1)
    return np.round(noisy * 255).astype(np.uint8), None, 1


def _strokes_mask(side: int) -> np.ndarray:
    """Free-form strokes (bool (side, side), True = missing), as the strokes degradation draws."""
    from jaxgan.tasks.restore.degradations import strokes

    return np.asarray(strokes(jax.random.key(0), 1, side, side))[0, ..., 0] > 0.5


def restore_speed(method: str, repeats: int = 2) -> dict[str, Any]:
    """Seconds and megapixels per second of restoring one 1-megapixel image with a shipped restorer
    (tiles and the hole fill included; the best of `repeats` after a first, compiling run) or with
    "nlm" / "bm3d" (scikit-image's non-local means, BM3D, once) at the true sigma 25."""
    from jaxgan.tasks.restore.api import restore

    image, mask, scale = speed_input("denoise-colour" if method in ("nlm", "bm3d") else method)
    unit, ones = image[None].astype(np.float32) / 255, np.ones((1,) + image.shape[:2] + (1,))
    if method == "nlm":
        run = lambda: nl_means(25.0)(unit, ones)  # noqa: E731
    elif method == "bm3d":
        run = lambda: bm3d_denoise(25.0)(unit, ones)  # noqa: E731
    else:
        run = lambda: restore(image, model=method, mask=mask, scale=scale)  # noqa: E731
    classical = method in ("nlm", "bm3d")  # nothing to compile: timed once
    times = []
    for _ in range(1 if classical else repeats + 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    times = times if classical else times[1:]  # the first run compiles
    seconds = min(times)
    pixels = SPEED_SIDE * SPEED_SIDE
    return {"method": method, "seconds": seconds, "mp_per_s": pixels / 1e6 / seconds}
