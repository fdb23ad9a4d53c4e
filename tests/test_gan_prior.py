"""Inpainting with a GAN as prior (Yeh et al. 2017): the latent search, vmapped and compiled, fits
the known pixels; the blend keeps them exactly; Poisson blending follows the generated gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data

from jaxgan import checkpoint, model_folder, run_info
from jaxgan import config as config_lib
from jaxgan.state import init_state, make_modules, sampled_variables
from jaxgan.tasks import get_task
from jaxgan.tasks.restore.gan_prior import (
    GanPrior,
    context_weights,
    gan_prior_inpaint,
    load_gan,
    poisson_blend,
    restore_file,
)
from scripts import restore as restore_script


@pytest.fixture(scope="module")
def gan(tmp_path_factory):
    """A fresh DCGAN-32 (nz 16, widths 8) saved as a workdir: (workdir, GanPrior)."""
    config = config_lib.load("dcgan32").replace(nz=16, ngf=8, ndf=8, batch_size=4)
    models = make_modules(config)
    state = jax.jit(functools.partial(init_state, config, models))()
    workdir = tmp_path_factory.mktemp("gan")
    run_info.write_run_info(workdir, config)
    checkpoints = checkpoint.Checkpoints(workdir, async_save=False)
    checkpoints.save(1, state, {"data_position": 1})
    checkpoints.close()
    prior = GanPrior(
        get_task("gan").arch(config, "generator"),
        jax.device_get(sampled_variables(state, config, use_ema=False)),
        get_task("gan").arch(config, "discriminator"),
        jax.device_get(state.models["discriminator"].variables()),
    )
    return workdir, prior


def centre_masks(count, size=32):
    masks = np.zeros((count, size, size, 1), np.float32)
    masks[:, 8:24, 8:24] = 1
    return masks


def test_context_weights_favour_known_pixels_next_to_the_hole():
    weights = np.asarray(context_weights(jnp.asarray(centre_masks(1)[0])))[..., 0]
    assert np.all(weights[8:24, 8:24] == 0)  # the hole itself carries no context
    assert (
        weights[7, 16] > weights[5, 16] > 0 and weights[0, 0] == 0
    )  # nearer the hole, more weight


def test_poisson_blend_recovers_an_image_from_its_gradients():
    image = jnp.asarray(skimage.data.astronaut()[::8, ::8][:32, :32] / 127.5 - 1, jnp.float32)
    mask = jnp.asarray(centre_masks(1)[0])
    shifted = image + 0.3  # the same gradients, another brightness
    blended = poisson_blend(shifted, image, mask, iterations=2000)
    np.testing.assert_allclose(np.asarray(blended), np.asarray(image), atol=2e-3)
    np.testing.assert_array_equal(np.asarray(blended)[:8], np.asarray(image)[:8])


def test_latent_search_fits_a_generated_image_and_keeps_known_pixels(gan):
    _, prior = gan
    target_z = np.random.default_rng(5).standard_normal((2, 16)).astype(np.float32)
    from jaxgan.convert import build_model

    targets = np.asarray(
        build_model(prior.generator_arch).apply(prior.generator_variables, target_z, train=False)
    )
    masks = centre_masks(2)
    blended, fake, losses = gan_prior_inpaint(
        targets, masks, prior, steps=60, learning_rate=0.05, seed=1
    )
    assert losses.shape == (2, 60) and np.all(losses[:, -1] < 0.5 * losses[:, 0])
    np.testing.assert_array_equal(blended[masks[..., 0] == 0], targets[masks[..., 0] == 0])
    # vmapped: the first image alone follows the same path as in the batch (its own z, the same
    # start)
    alone = gan_prior_inpaint(targets[:1], masks[:1], prior, steps=60, learning_rate=0.05, seed=1)
    np.testing.assert_allclose(alone[2][0], losses[0], rtol=1e-4)


def test_any_size_file_with_workdir_or_folders(gan, tmp_path):
    workdir, prior = gan
    photo = skimage.data.chelsea()[:45, :60]
    hole = np.zeros((45, 60), bool)
    hole[15:30, 20:40] = True
    out = restore_file(photo, hole, prior, steps=5)
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    # the CLI: a workdir holds both models; converted folders need --discriminator
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "cat.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    args = [
        "--method",
        "gan-prior",
        "--input",
        str(tmp_path / "cat.png"),
        "--mask",
        str(tmp_path / "mask.png"),
        "--steps",
        "5",
        "--blend",
        "feather",
    ]
    assert (
        restore_script.main(["--checkpoint", str(workdir), *args, "--out", str(tmp_path / "a.png")])
        == 0
    )
    restored = np.asarray(Image.open(tmp_path / "a.png"))
    np.testing.assert_array_equal(restored[~hole], photo[~hole])
    generator = model_folder.save_model(
        tmp_path / "g", prior.generator_arch, prior.generator_variables
    )
    critic = model_folder.save_model(
        tmp_path / "d", prior.discriminator_arch, prior.discriminator_variables
    )
    assert (
        restore_script.main(
            ["--checkpoint", str(generator), *args, "--out", str(tmp_path / "b.png")]
        )
        == 1
    )
    assert (
        restore_script.main(
            [
                "--checkpoint",
                str(generator),
                "--discriminator",
                str(critic),
                *args,
                "--out",
                str(tmp_path / "b.png"),
            ]
        )
        == 0
    )
    with pytest.raises(checkpoint.CheckpointError, match="not a generator"):
        load_gan(critic, generator)


def test_evaluate_reports_the_gan_prior_beside_the_baselines(gan):
    from jaxgan.tasks.restore.benchmark import evaluate_restoration

    report = evaluate_restoration(
        "centre_square",
        data="digits",
        num_crops=2,
        gan_prior=str(gan[0]),
        gan_prior_steps=3,
        print_table=False,
    )
    row = next(v for k, v in report["results"].items() if k.startswith("GAN prior"))
    assert report["image_size"] == 32 and {"psnr", "psnr_hole", "ssim"} <= set(row)
    assert (
        row["psnr"] > row["psnr_hole"]
    )  # known pixels are exact, so the whole image scores higher
    assert all(
        "digits_kid" in row for row in report["results"].values()
    )  # KID beside PSNR on digits
    with pytest.raises(ValueError, match="inpaints"):
        evaluate_restoration("noise", num_crops=2, gan_prior=str(gan[0]), print_table=False)


def test_digits_kid_ranks_real_digits_above_blank_images():
    from jaxgan.tasks.restore.heldout import held_out_crops
    from jaxgan.tasks.restore.scores import digits_kid

    clean = held_out_crops("digits", 32, 1, 40, seed=0) / 255.0
    other = held_out_crops("digits", 32, 1, 80, seed=0)[40:] / 255.0  # other held-out digits
    kid = digits_kid({"other digits": other, "blank": np.zeros_like(clean)}, clean, seed=0)
    assert abs(kid["other digits"]) < 0.1 * kid["blank"]
