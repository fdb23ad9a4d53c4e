"""Classical baselines restore what they claim; optional packages skip with the reason when
missing."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.metrics.image import psnr
from jaxgan.tasks.restore import baselines
from jaxgan.tasks.restore.degradations import Degradation
from jaxgan.tasks.restore.heldout import held_out_crops


def degraded(name, count=2, **settings):
    degradation = Degradation(name, 32, **settings)
    clean = jnp.asarray(held_out_crops("photos", 32, 3, count, seed=2), jnp.float32) / 127.5 - 1
    damaged, mask = degradation.apply(jax.random.key(0), clean)
    unit = [(np.asarray(a) + 1) / 2 for a in (clean, damaged)]
    return degradation, unit[0], unit[1], np.asarray(mask)


def test_inpainting_baselines_fill_the_hole():
    degradation, clean, damaged, mask = degraded("centre_square", hole_fill="zero")
    methods = baselines.baselines(degradation)
    before = float(jnp.mean(psnr(damaged, clean, mask=mask)))
    for name, (method, reason) in methods.items():
        if method is None:
            assert "OpenCV" in name and not baselines.available("cv2") and "opencv" in reason
            continue
        out = method(damaged, mask, None)
        assert out.shape == clean.shape
        assert float(jnp.mean(psnr(out, clean, mask=mask))) > before + 5, name
    assert (
        "Telea (OpenCV)" in methods and methods["Telea (OpenCV)"][0] is not None
    ) == baselines.available("cv2")


def test_non_local_means_denoises():
    degradation, clean, damaged, mask = degraded("noise", noise_sigma=25.0)
    method, _ = baselines.baselines(degradation)["non-local means (h = 0.5 sigma)"]
    gain = float(jnp.mean(psnr(method(damaged, mask, None), clean) - psnr(damaged, clean)))
    assert gain > 5


@pytest.mark.skipif(
    importlib.util.find_spec("bm3d") is None, reason="bm3d is an optional extra (non-commercial)"
)
def test_bm3d_denoises():
    degradation, clean, damaged, mask = degraded("noise", count=1, noise_sigma=25.0)
    method, _ = baselines.baselines(degradation)["BM3D"]
    assert float(jnp.mean(psnr(method(damaged, mask, None), clean) - psnr(damaged, clean))) > 5


def test_bm3d_is_reported_as_skipped_without_the_package(monkeypatch):
    monkeypatch.setattr(baselines, "available", lambda package: package != "bm3d")
    method, reason = baselines.baselines(Degradation("noise"))["BM3D"]
    assert method is None and "non-commercial" in reason


def test_lanczos_upsampling():
    constant = np.full((1, 8, 8, 3), 0.4, np.float32)
    np.testing.assert_allclose(baselines.lanczos(constant, (32, 32)), 0.4, atol=1e-5)
    ramp = np.tile(np.linspace(0.2, 0.8, 8, dtype=np.float32)[None, :, None], (8, 1, 3))[None]
    up = baselines.lanczos(ramp, (32, 32))
    assert up.shape == (1, 32, 32, 3) and np.all(np.diff(up[0, 16, 4:-4, 0]) > 0)  # monotone inside
