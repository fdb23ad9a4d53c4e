"""Inpainting with a trained GAN as the prior (Yeh et al. 2017, "Semantic Image Inpainting with Deep
Generative Models"): the seed's generation-restoration pair.

For each damaged image, find the latent z whose G(z) best matches the known pixels, weighted by how
many missing pixels surround each one (the contextual loss over 7x7 windows), plus `prior_weight` x
the discriminator's perceptual term log(1 - D(G(z))); Adam over z, vmapped over the batch and
compiled once. G(z) is then blended into the known pixels: Poisson blending (the gradients of G(z)
inside the hole, the known pixels as the boundary; conjugate gradients) or a feathered alpha blend.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import checkpoint as checkpoint_lib
from jaxgan import run_info
from jaxgan.convert import build_model
from jaxgan.loading import load_variables

CONTEXT_WINDOW = 7  # Yeh et al.'s importance-weighting window


@dataclasses.dataclass(frozen=True, eq=False)
class GanPrior:
    """A generator and discriminator (eval mode) to inpaint with."""

    generator_arch: dict[str, Any]
    generator_variables: Any
    discriminator_arch: dict[str, Any] | None
    discriminator_variables: Any

    @property
    def image_size(self) -> int:
        return self.generator_arch["image_size"]

    @property
    def nc(self) -> int:
        return self.generator_arch["nc"]


def load_gan(
    checkpoint: str | os.PathLike,
    discriminator: str | os.PathLike | None = None,
    use_ema: bool = True,
) -> GanPrior:
    """G and D from a GAN training workdir, or a converted generator folder plus a converted
    discriminator."""
    hint = "; the gan-prior method needs a GAN (generator and discriminator)"
    generator_arch, generator, _ = load_variables(checkpoint, "generator", use_ema, hint)
    if discriminator is None and not run_info.is_workdir(checkpoint):
        raise checkpoint_lib.CheckpointError(
            f"{checkpoint} is a converted generator: give its discriminator too "
            "(--discriminator DIR), or a GAN training workdir that holds both"
        )
    critic_arch, critic, _ = load_variables(
        checkpoint if discriminator is None else discriminator, "discriminator"
    )
    if (critic_arch["image_size"], critic_arch["nc"]) != (
        generator_arch["image_size"],
        generator_arch["nc"],
    ):
        raise checkpoint_lib.CheckpointError(
            f"{discriminator} judges {critic_arch['image_size']}px images of "
            f"{critic_arch['nc']} channels; the generator makes "
            f"{generator_arch['image_size']}px, {generator_arch['nc']}"
        )
    return GanPrior(generator_arch, generator, critic_arch, critic)


def context_weights(mask: jax.Array, window: int = CONTEXT_WINDOW) -> jax.Array:
    """Yeh et al.'s importance weights (H, W, 1): for a known pixel, the fraction of missing pixels
    in the window around it (known pixels near the hole matter most); 0 in the hole."""
    kernel = jnp.ones((window, window, 1, 1), mask.dtype) / window**2
    missing = jax.lax.conv_general_dilated(
        mask[None], kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )[0]
    return missing * (1 - mask)


def laplacian(images: jax.Array) -> jax.Array:
    """The graph Laplacian of the 4-neighbour pixel grid with free (Neumann) borders, per channel
    (H, W, C)."""
    padded = jnp.pad(images, ((1, 1), (1, 1), (0, 0)), mode="edge")
    neighbours = padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:]
    return 4 * images - neighbours


def poisson_blend(
    generated: jax.Array, known: jax.Array, mask: jax.Array, iterations: int = 500
) -> jax.Array:
    """Pixels in the hole whose gradients are G(z)'s, meeting the known pixels at its border
    (H, W, C)."""
    outside = known * (1 - mask)

    def operator(u):
        return mask * laplacian(mask * u) + (1 - mask) * u + 1e-6 * u

    rhs = mask * (laplacian(generated) - laplacian(outside))
    solution, _ = jax.scipy.sparse.linalg.cg(
        operator, rhs, x0=generated * mask, maxiter=iterations, tol=1e-6
    )
    return outside + mask * solution


def feather_blend(
    generated: np.ndarray, known: np.ndarray, mask: np.ndarray, width: float = 4.0
) -> np.ndarray:
    """Alpha blend rising from 0 at the hole's border to 1 at `width` pixels inside it
    (N, H, W, C)."""
    from scipy.ndimage import distance_transform_edt

    alpha = np.stack(
        [np.minimum(distance_transform_edt(m[..., 0] > 0.5) / width, 1.0) for m in mask]
    )[..., None]
    return alpha * generated + (1 - alpha) * known


@functools.lru_cache(maxsize=4)
def _search_fn(prior: GanPrior, steps: int, learning_rate: float, prior_weight: float, blend: str):
    generator = build_model(prior.generator_arch)
    critic = build_model(prior.discriminator_arch) if prior.discriminator_arch else None
    optimizer = optax.adam(learning_rate)

    def one(z, image, mask, generator_vars, critic_vars):
        weights = context_weights(mask)

        def loss_fn(latent):
            fake = generator.apply(generator_vars, latent[None], train=False)[0]
            contextual = jnp.sum(weights * jnp.abs(fake - image))
            perceptual = 0.0
            if critic is not None and prior_weight:
                logit = critic.apply(critic_vars, fake[None], train=False)[0]
                perceptual = -jax.nn.softplus(logit)  # log(1 - D(G(z)))
            return contextual + prior_weight * perceptual

        def update(carry, _):
            latent, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(latent)
            changes, opt_state = optimizer.update(grads, opt_state, latent)
            return (optax.apply_updates(latent, changes), opt_state), loss

        (z, _), losses = jax.lax.scan(update, (z, optimizer.init(z)), None, length=steps)
        fake = generator.apply(generator_vars, z[None], train=False)[0]
        blended = poisson_blend(fake, image, mask) if blend == "poisson" else fake
        return blended, fake, losses

    return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None, None)))


def gan_prior_inpaint(
    images: np.ndarray,
    masks: np.ndarray,
    prior: GanPrior,
    steps: int = 1000,
    learning_rate: float = 0.01,
    prior_weight: float = 0.003,
    seed: int = 0,
    blend: str = "poisson",
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(blended, G(z), losses (N, steps)) for images (N, S, S, nc) in [-1, 1] with masks
    (N, S, S, 1), 1 = missing.

    Known pixels of `blended` equal the input's exactly; z starts from N(0, 1) drawn from `seed`.
    """
    if blend not in ("poisson", "feather"):
        raise ValueError(f"unknown blending {blend!r}; expected 'poisson' or 'feather'")
    expected = (prior.image_size, prior.image_size, prior.nc)
    if images.shape[1:] != expected or masks.shape != images.shape[:3] + (1,):
        raise ValueError(
            f"images {images.shape} and masks {masks.shape} must be "
            f"(N, {expected[0]}, {expected[1]}, {expected[2]}) and "
            f"(N, {expected[0]}, {expected[1]}, 1) for this generator"
        )
    search = _search_fn(prior, steps, learning_rate, prior_weight, blend)
    latents = np.random.default_rng(seed).standard_normal((len(images), prior.generator_arch["nz"]))
    images, masks = np.asarray(images, np.float32), np.asarray(masks, np.float32)
    outputs = []
    for first in range(0, len(images), batch_size):
        part = slice(first, first + batch_size)
        outputs.append(
            jax.device_get(
                search(
                    latents[part].astype(np.float32),
                    images[part],
                    masks[part],
                    prior.generator_variables,
                    prior.discriminator_variables,
                )
            )
        )
    blended, fake, losses = (np.concatenate([o[i] for o in outputs]) for i in range(3))
    if blend == "feather":
        blended = feather_blend(fake, images, masks)
    blended = np.where(masks > 0.5, blended, images)  # the known pixels, exactly
    return blended, fake, losses


def restore_file(
    image, mask, prior: GanPrior, value_range: tuple[float, float] | None = None, **options: Any
) -> np.ndarray:
    """Inpaint one image (file or array) of any size with the GAN prior; the input's shape, dtype
    and range.

    An image of another size than the generator's is resized to it for the latent search, and G(z)
    back (so fine detail in a large hole is the generator's resolution); known pixels are kept
    exactly.
    """
    from jaxgan.data import images as image_lib
    from jaxgan.tasks.restore.api import match_bands, read_mask, unmatch_bands
    from jaxgan.tasks.restore.files import check_array, read_any

    name = str(image) if isinstance(image, (str, os.PathLike)) else "image"
    array = read_any(image) if isinstance(image, (str, os.PathLike)) else check_array(image, name)
    hole = read_mask(mask, array.shape[:2])
    unit = image_lib.to_unit(array, value_range, name)
    size, (height, width) = prior.image_size, array.shape[:2]
    small_hole = image_lib.resize(hole[..., None].astype(np.float32), size, size) > 0.5
    planes = match_bands(unit, prior.nc, name)
    small = np.stack([image_lib.resize(p.astype(np.float32), size, size) for p in planes]) * 2 - 1
    masks = np.repeat(small_hole[None].astype(np.float32), len(planes), axis=0)
    blended, _, _ = gan_prior_inpaint(small, masks, prior, **options)
    restored = [np.clip(image_lib.resize((b + 1) / 2, height, width), 0, 1) for b in blended]
    unit_out = unmatch_bands(restored, unit.shape[-1], prior.nc)
    result = image_lib.from_unit(
        np.where(hole[..., None], unit_out, unit), array.dtype, value_range
    )
    result[~hole] = array[~hole]
    return result[..., 0] if np.ndim(image) == 2 else result
