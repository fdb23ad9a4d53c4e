"""The shipped restorers: each loads with no checkpoint, keeps known pixels, and beats its classical
baseline on a few test crops; `--model list` and unknown names."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import convert
from jaxgan.data.images import to_model_range
from jaxgan.metrics.image import psnr
from jaxgan.tasks.restore import pretrained
from jaxgan.tasks.restore.api import load_restorer, restore
from jaxgan.tasks.restore.baselines import nl_means
from jaxgan.tasks.restore.degradations import Degradation
from jaxgan.tasks.restore.heldout import held_out_crops
from scripts import restore as restore_cli

CROPS = 8


def test_every_shipped_restorer_is_present_and_small():
    assert pretrained.names() == list(pretrained.DESCRIPTIONS)
    for name in pretrained.names():
        assert pretrained.path_of(name).stat().st_size < 5e6, name


def degraded_test_crops(name: str, degradation: str, sigma: float = 25.0):
    """(clean, damaged, mask) [-1, 1] of a few test crops, degraded as the shipped model expects."""
    restorer = load_restorer(model=name)
    settings = Degradation.from_config(restorer.config.replace(degradation=degradation))
    settings = Degradation(**{**settings.__dict__, "noise_sigma": sigma})
    crops = held_out_crops("photos", 64, restorer.nc, CROPS, split="test")
    clean = to_model_range(jnp.asarray(crops), jnp.float32)
    damaged, mask = jax.jit(settings.apply)(jax.random.key(11), clean)
    return np.asarray(clean), np.asarray(damaged), np.asarray(mask)


def mean_psnr(images, clean, mask=None) -> float:
    unit = [np.round((np.clip(x, -1, 1) + 1) * 127.5) / 255 for x in (images, clean)]
    return float(jnp.mean(psnr(*unit, mask=mask)))


@pytest.mark.parametrize("name", ["denoise-colour", "denoise-gray"])
def test_shipped_denoisers_beat_non_local_means(name):
    clean, damaged, mask = degraded_test_crops(name, "noise")
    restored = load_restorer(model=name).restore_batches(damaged, mask)
    classical = nl_means(25.0)((damaged + 1) / 2, mask) * 2 - 1
    assert mean_psnr(restored, clean) > mean_psnr(classical, clean) + 0.3
    assert mean_psnr(restored, clean) > mean_psnr(damaged, clean) + 6


@pytest.mark.parametrize("name", ["sr4x", "sr2x"])
def test_shipped_super_resolution_beats_bicubic(name):
    clean, bicubic, mask = degraded_test_crops(name, "downsample")
    restored = load_restorer(model=name).restore_batches(bicubic, mask)
    assert mean_psnr(restored, clean) > mean_psnr(bicubic, clean) + 0.3


def test_shipped_inpainter_keeps_known_pixels_and_stays_near_its_fill():
    """The inpainter does not beat its harmonic starting fill (docs/results.md: 0.8 dB below it on
    the test crops, the goal not reached); this guards what it does do: known pixels exact, a
    correction inside the hole, hole PSNR within 1 dB of the fill's."""
    clean, filled, mask = degraded_test_crops("inpaint", "centre_square")
    restored = load_restorer(model="inpaint").restore_batches(filled, mask)
    np.testing.assert_array_equal(restored[mask[..., 0] == 0], filled[mask[..., 0] == 0])
    assert np.abs(restored - filled).max() > 0.01
    assert mean_psnr(restored, clean, mask) >= mean_psnr(filled, clean, mask) - 1.0
    image = np.round((clean[0] + 1) * 127.5).astype(np.uint8)
    out = restore(image, model="inpaint", mask=mask[0, ..., 0])
    np.testing.assert_array_equal(out[mask[0, ..., 0] == 0], image[mask[0, ..., 0] == 0])
    assert out.dtype == np.uint8 and not np.array_equal(out, image)


def test_model_list_prints_one_line_per_restorer_name_first(capsys):
    assert restore_cli.main(["--model", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == pretrained.names()
    assert all(len(line.split("\t")) == 3 for line in lines)


def test_an_unknown_model_lists_the_names_and_writes_nothing(tmp_path, capsys):
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    out = tmp_path / "out.png"
    code = restore_cli.main(["--model", "denoise", "--input", str(image), "--out", str(out)])
    error = capsys.readouterr().err
    assert code == 1 and "no shipped restorer 'denoise'" in error and "denoise-colour" in error
    assert not out.exists()
    with pytest.raises(ValueError, match="sr4x"):
        restore(np.zeros((8, 8, 3), np.uint8), model="sr8x")


def test_a_16_bit_grayscale_scan_is_restored_at_its_bit_depth_by_either_denoiser():
    """A colour model takes the scan as three equal channels (and returns their luma): it runs, but
    noise equal in all channels is not what it learned, so it removes little; the gray model is the
    one for scans (docs/restoration.md)."""
    rng = np.random.default_rng(0)
    clean = held_out_crops("photos", 64, 1, 1, split="test")[0, ..., 0].astype(np.float64) * 257
    noisy = np.clip(clean + rng.normal(0, 25 * 257, clean.shape), 0, 65535).astype(np.uint16)
    errors = {}
    for name in ("denoise-colour", "denoise-gray", None):
        out = noisy if name is None else restore(noisy, model=name)
        assert out.shape == noisy.shape and out.dtype == np.uint16
        errors[name] = np.sqrt(np.mean((out.astype(np.float64) - clean) ** 2))
    assert errors["denoise-gray"] < 0.5 * errors[None] and errors["denoise-colour"] < errors[None]


def test_a_shipped_restorer_is_loaded_and_compiled_once_a_process(monkeypatch):
    restorer = load_restorer(model="sr4x")
    assert load_restorer(model="sr4x") is restorer
    low = np.zeros((21, 30, 3), np.uint8)
    first = restore(low, model="sr4x", scale=4)
    compiled = restorer.apply._cache_size()
    built = []
    monkeypatch.setattr(convert, "build_model", lambda *args: built.append(args))
    np.testing.assert_array_equal(restore(low, model="sr4x", scale=4), first)
    assert not built and restorer.apply._cache_size() == compiled  # nothing rebuilt or compiled


def test_tiles_are_fitted_to_the_image():
    restorer = load_restorer(model="denoise-colour")
    assert restorer.tile_and_overlap(1024, 1024, 8) == (1024, 32)  # one tile, nothing wasted
    assert restorer.tile_and_overlap(3000, 4000, 8) == (544, 32)  # 48 tiles in 6 batches of 8
    assert restorer.tile_and_overlap(50, 70, 8) == (80, 20)  # one tile, a multiple of 16
