"""The residual restorer and its regression recipe (issue 22): it starts exactly at each task's
classical answer, the harmonic fill it corrects, the blind-noise, mixed-hole and 8-fold
augmentations, the learning-rate schedule, the photos' validation split, and the self-ensemble."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.data import sources
from jaxgan.state import init_state, make_modules
from jaxgan.tasks.adversarial import Options
from jaxgan.tasks.restore import degradations
from jaxgan.tasks.restore.ensemble import dihedral, self_ensemble, undo_dihedral
from jaxgan.tasks.restore.heldout import held_out_batch, held_out_crops
from jaxgan.tasks.restore.step import eval_restore_fn, random_dihedral, restore_step

TINY = dict(image_size=32, restorer_width=8, restorer_blocks=2, batch_size=4, eval_num=6)
SHIPPED = ("restore_denoise64", "restore_gray64", "restore_sr4x64", "restore_sr2x64")


def tiny(name: str, **changes) -> config_lib.Config:
    return config_lib.load(name).replace(**{**TINY, **changes})


@functools.cache
def modules_and_state(config: config_lib.Config):
    modules = make_modules(config)
    return modules, init_state(config, modules)


@pytest.mark.parametrize(
    "name, changes",
    [(name, {}) for name in SHIPPED]
    + [("restore_inpaint64", {}), ("restore_inpaint64", {"degradation": "centre_square"})],
)
def test_step_zero_output_is_the_classical_baseline_exactly(name, changes):
    """Zero-initialised last layer: the untrained restorer returns its input, which is the noisy
    image, the bicubic upsampling, or the harmonic fill with the known pixels."""
    config = tiny(name, **changes)
    modules, state = modules_and_state(config)
    clean, damaged, mask = held_out_batch(config, 6)
    restored = np.asarray(
        eval_restore_fn(modules)(state.models["restorer"].variables(), damaged, mask)
    )
    np.testing.assert_array_equal(restored, damaged)
    assert np.abs(damaged - clean).max() > 0.05  # a real degradation, not the clean image
    if config.degradation == "downsample":
        low = degradations.downsample(jnp.asarray(clean), config.scale_factor)
        bicubic = degradations.upsample(low, clean.shape[1:3])  # eager: rounds unlike jit
        np.testing.assert_allclose(damaged, np.asarray(bicubic), rtol=0, atol=1e-6)


def test_training_moves_the_restorer_away_from_its_start():
    config = tiny("restore_denoise64")
    modules, state = modules_and_state(config)
    step = jax.jit(functools.partial(restore_step, config, modules))
    images = held_out_crops("photos", 32, 3, 4, split="validation")
    for _ in range(3):
        state, metrics = step(state, {"images": jnp.asarray(images)})
    head = state.models["restorer"].params["head"]["kernel"]
    assert float(jnp.abs(head).max()) > 0 and np.isfinite(float(metrics["rec_loss"]))


def test_harmonic_fill_reproduces_a_harmonic_function_and_keeps_known_pixels():
    """A linear ramp solves Laplace's equation: the fill of an interior hole must give it back."""
    rows, cols = np.meshgrid(np.arange(48), np.arange(40), indexing="ij")
    ramp = ((rows * 0.02 - cols * 0.015) - 0.2)[None, ..., None].astype(np.float32)
    mask = np.zeros_like(ramp)
    mask[:, 10:37, 8:29] = 1
    filled = np.asarray(
        degradations.harmonic_fill(jnp.asarray(ramp * (1 - mask)), jnp.asarray(mask))
    )
    np.testing.assert_array_equal(filled[mask == 0], ramp[mask == 0])
    assert np.abs(filled - ramp).max() < 2e-3  # 0.3 levels of 255 on a hole 27 pixels high
    zero = np.asarray(degradations.fill_holes(jnp.asarray(ramp), jnp.asarray(mask), "zero"))
    assert np.abs(zero - ramp).max() > 0.1


def test_harmonic_fill_beats_the_mid_grey_fill_on_photos_of_odd_size():
    crops = held_out_crops("photos", 64, 3, 8, split="validation")[:, :63, :61]
    clean = jnp.asarray(crops, jnp.float32) / 127.5 - 1
    mask = jnp.broadcast_to(degradations.centre_square(63, 61), clean.shape[:3] + (1,))
    errors = {
        method: float(jnp.mean(jnp.square(degradations.fill_holes(clean, mask, method) - clean)))
        for method in ("harmonic", "zero")
    }
    assert errors["harmonic"] < 0.5 * errors["zero"]


def test_blind_training_noise_draws_a_sigma_per_image_and_evaluation_keeps_one():
    config = tiny("restore_denoise64")
    clean = jnp.zeros((64, 16, 16, 3))
    train = degradations.Degradation.from_config(config, training=True)
    noisy, _ = train.apply(jax.random.key(0), clean)
    sigmas = np.asarray(jnp.std(noisy, axis=(1, 2, 3))) * 127.5  # mid-grey: nothing is clipped
    assert sigmas.min() < 10 and sigmas.max() > 40 and sigmas.max() < 51
    evaluation = degradations.Degradation.from_config(config)
    assert evaluation.noise_sigma_max == 0 and evaluation.noise_sigma == 25


def test_mixed_holes_draw_each_mask_kind():
    masks = np.asarray(degradations.make_mask("mixed_holes", jax.random.key(3), 60, 32, 32))
    square = np.asarray(degradations.centre_square(32, 32))
    is_square = [np.array_equal(m, square) for m in masks]
    assert 5 < sum(is_square) < 35 and masks.reshape(60, -1).max(axis=1).min() == 1


def test_random_dihedral_applies_one_of_the_eight_transforms_to_both_arrays():
    images = np.arange(6 * 8 * 8 * 2, dtype=np.float32).reshape(6, 8, 8, 2)
    first, second = random_dihedral(jax.random.key(5), jnp.asarray(images), jnp.asarray(-images))
    seen = set()
    for image, a, b in zip(images, np.asarray(first), np.asarray(second)):
        matches = [k for k in range(8) if np.array_equal(dihedral(image, k), a)]
        assert len(matches) == 1 and np.array_equal(b, -a)
        seen.add(matches[0])
    assert len(seen) > 2


def test_self_ensemble_undoes_each_transform():
    image = np.random.default_rng(0).random((2, 6, 6, 3)).astype(np.float32)
    for index in range(8):
        np.testing.assert_array_equal(undo_dihedral(dihedral(image, index), index), image)
    mask = np.ones(image.shape[:-1] + (1,), np.float32)
    np.testing.assert_allclose(self_ensemble(lambda x, m: x, image, mask), image, atol=1e-7)
    shifted = self_ensemble(lambda x, m: np.roll(x, 1, axis=-2), image, mask)
    assert np.abs(shifted - np.roll(image, 1, axis=-2)).max() > 0.1  # not equivariant: averaged


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_learning_rate_schedule_matches_the_pytorch_reference(schedule):
    from torch_ref.train import lr_factor

    config = config_lib.Config(warmup_steps=10, lr_decay_steps=50, lr_schedule=schedule)
    options = Options.from_config(config)
    for step in (0, 4, 9, 10, 25, 49, 50, 70):
        got = float(options.lr_factor(jnp.asarray(step), jnp.float32))
        assert got == pytest.approx(lr_factor(config, step), abs=1e-7), step
    assert options.lr_factor(jnp.asarray(0)) == pytest.approx(0.1)
    assert float(options.lr_factor(jnp.asarray(50))) == pytest.approx(0.0, abs=1e-7)
    assert Options().lr_factor(jnp.asarray(3)) is None  # constant: no schedule compiled in


def test_photos_validation_region_is_never_cropped_for_training():
    for name in ("astronaut", "text", "china"):
        full = sources.photo(name)
        train, validation = (sources.photo_region(name, s) for s in ("train", "validation"))
        assert train.shape[1] + validation.shape[1] == full.shape[1]
        np.testing.assert_array_equal(np.concatenate([train, validation], axis=1), full)
        assert validation.shape[1] >= 64
    assert sources.photo_names("train", 3) == sources.PHOTOS_TRAIN
    assert set(sources.PHOTOS_TRAIN_GRAY) <= set(sources.photo_names("train", 1))
    assert not set(sources.photo_names("validation", 1)) & set(sources.PHOTOS_TEST)
    gray = sources.Photos(64, 1, "train").load(sources.PHOTOS_TRAIN.index("china"), 0)
    assert gray.shape == (64, 64, 1)


def test_validation_and_test_crops_differ_and_none_is_flat():
    validation = held_out_crops("photos", 64, 3, 20, split="validation")
    test = held_out_crops("photos", 64, 3, 20, split="test")
    assert validation.shape == test.shape == (20, 64, 64, 3)
    assert not np.array_equal(validation, test)
    assert validation.reshape(20, -1).std(axis=1).min() >= 2.0
    with pytest.raises(ValueError, match="held-out split"):
        held_out_crops("photos", 64, 3, 2, split="train")


def test_an_exactly_restored_crop_scores_the_8_bit_floor_not_infinity():
    from jaxgan.tasks.restore.scores import EXACT_PSNR, scores

    clean = np.random.default_rng(0).random((3, 16, 16, 3)).astype(np.float32)
    restored = clean.copy()
    restored[1:] = np.clip(restored[1:] + 0.05, 0, 1)  # two crops with real error, one exact
    mask = np.ones((3, 16, 16, 1), np.float32)
    result = scores(restored, clean, mask, degradations.Degradation("centre_square", 16))
    assert np.isfinite(result["psnr"]) and np.isfinite(result["psnr_hole"])
    assert EXACT_PSNR / 3 < result["psnr"] < EXACT_PSNR
    exact = scores(clean, clean, mask, degradations.Degradation("noise", 16))["psnr"]
    assert exact == pytest.approx(EXACT_PSNR, abs=0.05)  # float32 min against the float64 floor
