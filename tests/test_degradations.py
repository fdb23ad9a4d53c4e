"""Degradations: masks follow the convention (1 = missing), noise has its sigma, downsampling and
JPEG are what they claim, and everything is a function of the key only (any device count)."""

import io
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import config as config_lib
from jaxgan.tasks.restore import degradations as deg
from jaxgan.tasks.restore.degradations import Degradation


@pytest.fixture(scope="module")
def photos():
    from jaxgan.tasks.restore.heldout import held_out_crops

    return jnp.asarray(held_out_crops("photos", 32, 3, 6, seed=1), jnp.float32) / 127.5 - 1


@pytest.mark.parametrize("fill", ["zero", "harmonic"])
def test_centre_square_is_context_encoders_hole(photos, fill):
    damaged, mask = Degradation("centre_square", 32, hole_fill=fill).apply(
        jax.random.key(0), photos
    )
    expected = np.zeros((32, 32), np.float32)
    expected[8:24, 8:24] = 1
    assert mask.shape == (6, 32, 32, 1)
    np.testing.assert_array_equal(mask[..., 0], np.broadcast_to(expected, (6, 32, 32)))
    hole = np.asarray(damaged)[:, 8:24, 8:24]
    if fill == "zero":
        np.testing.assert_array_equal(hole, 0)  # holes are mid-grey
    else:  # a smooth fill from the border, never outside the border's range
        border = np.asarray(photos)[:, 7:25, 7:25]
        assert hole.min() >= border.min() and hole.max() <= border.max() and hole.std() > 0
    keep = expected[None, ..., None] == 0
    np.testing.assert_array_equal(np.where(keep, damaged, 0), np.where(keep, photos, 0))


@pytest.mark.parametrize("name", ["random_boxes", "strokes"])
def test_random_masks_are_seeded_binary_and_partial(name):
    first = np.asarray(deg.make_mask(name, jax.random.key(3), 64, 64, 64))
    again = np.asarray(
        jax.jit(deg.make_mask, static_argnums=(0, 2, 3, 4))(name, jax.random.key(3), 64, 64, 64)
    )
    other = np.asarray(deg.make_mask(name, jax.random.key(4), 64, 64, 64))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert set(np.unique(first)) == {0.0, 1.0}
    coverage = first.mean(axis=(1, 2, 3))
    assert (
        coverage.min() > 0.005 and coverage.max() < 0.8
    )  # every image has a hole, none is all hole
    assert len({m.tobytes() for m in first}) == 64  # each image its own mask


def test_noise_has_its_sigma_and_stays_in_range():
    grey = jnp.zeros((16, 64, 64, 3))
    damaged, mask = Degradation("noise", 64, noise_sigma=25.0).apply(jax.random.key(0), grey)
    residual = np.asarray(damaged - grey) * 127.5
    assert abs(residual.std() - 25.0) < 0.25 and abs(residual.mean()) < 0.25
    assert np.all(np.asarray(mask) == 1)  # every pixel is degraded, so every pixel is restored
    white = jnp.ones((4, 32, 32, 3))
    clipped, _ = Degradation("noise", 32).apply(jax.random.key(1), white)
    assert float(clipped.max()) <= 1.0 and float(clipped.min()) >= -1.0


@pytest.mark.parametrize("method", ["area", "bicubic"])
def test_downsampling_then_bicubic_upsampling(method, photos):
    low = deg.downsample(photos, 4, method)
    assert low.shape == (6, 8, 8, 3)
    levels = (np.asarray(low) + 1) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)  # 8-bit, as a saved file
    if method == "area":
        expected = np.asarray(photos).reshape(6, 8, 4, 8, 4, 3).mean(axis=(2, 4))
        np.testing.assert_allclose(np.asarray(low), expected, atol=1 / 127.5)
    constant = jnp.full((1, 32, 32, 3), 0.2)
    up = deg.upsample(deg.downsample(constant, 2, method), (32, 32))
    np.testing.assert_allclose(np.asarray(up), 0.2, atol=1 / 127.5)
    damaged, mask = Degradation("downsample", 32, scale_factor=4, downsampler=method).apply(
        None, photos
    )
    np.testing.assert_allclose(
        np.asarray(damaged), np.asarray(deg.upsample(low, (32, 32))), atol=1e-6
    )
    assert np.all(np.asarray(mask) == 1)
    with pytest.raises(ValueError, match="divisible"):
        deg.downsample(jnp.zeros((1, 30, 30, 3)), 4)


def test_jpeg_runs_on_the_host_through_libjpeg():
    from jaxgan.tasks.restore.heldout import held_out_crops

    crops = held_out_crops("photos", 32, 3, 3, seed=0)
    compressed = deg.jpeg_compress(crops, 20)
    buffer = io.BytesIO()
    Image.fromarray(crops[1]).save(buffer, format="JPEG", quality=20)
    np.testing.assert_array_equal(compressed[1], np.asarray(Image.open(buffer)))
    assert not np.array_equal(compressed, crops)
    transform = deg.host_transform(Degradation("jpeg", 32, jpeg_quality=20))
    batch = transform({"images": crops})
    np.testing.assert_array_equal(batch["damaged"], compressed)
    assert deg.host_transform(Degradation("noise")) is None
    with pytest.raises(ValueError, match="host"):
        Degradation("jpeg").apply(None, jnp.zeros((1, 32, 32, 3)))
    gray = deg.jpeg_compress(crops[..., :1], 50)
    assert gray.shape == (3, 32, 32, 1)


def test_unknown_degradation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown degradation 'blur'"):
        Degradation("blur")


def test_degradations_are_the_same_on_any_device_count():
    """Sharded over 4 simulated devices, the batch gets the same masks and noise as on one."""
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec, Mesh
        from jaxgan.tasks.restore.degradations import Degradation
        clean = jnp.linspace(-1, 1, 8 * 32 * 32 * 3).reshape(8, 32, 32, 3)
        mesh = Mesh(np.array(jax.devices()), ("data",))
        split = NamedSharding(mesh, PartitionSpec("data"))
        for name in ("strokes", "random_boxes", "noise"):
            apply = Degradation(name, 32).apply
            one = jax.jit(apply)(jax.random.key(7), clean)
            many = jax.jit(apply, in_shardings=(None, split), out_shardings=split)(
                jax.random.key(7), jax.device_put(clean, split))
            for a, b in zip(one, many):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        print("same", len(jax.devices()))
    """)
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "same 4" in result.stdout


def test_held_out_batches_do_not_depend_on_the_run_seed():
    """Every run of a seed sweep is scored on the same held-out crops and degradations."""
    from jaxgan.tasks.restore.heldout import held_out_batch

    config = config_lib.load("restore_denoise64").replace(image_size=32)
    first, other = held_out_batch(config, 4), held_out_batch(config.replace(seed=7), 4)
    for a, b in zip(first, other, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # damaged differs from clean: noise was added
