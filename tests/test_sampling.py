"""Generating images from a training workdir: the Python API and scripts/sample.py's outputs."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import convert, sampling
from jaxgan.data.order import sample_latents
from scripts import sample as sample_cli


def test_generate_uses_ema_by_default_and_is_deterministic(trained_workdir):
    ema = sampling.generate(trained_workdir, num=6, seed=3)
    assert ema.shape == (6, 32, 32, 1) and ema.dtype == np.float32
    assert np.abs(ema).max() <= 1
    np.testing.assert_array_equal(ema, sampling.generate(trained_workdir, num=6, seed=3))
    _, state, _ = sampling.restore_training_state(trained_workdir)
    arch, variables = sampling.load_generator(trained_workdir)
    _, live_variables = sampling.load_generator(trained_workdir, use_ema=False)
    for loaded, kept in ((variables, state.ema_params), (live_variables, state.generator.params)):
        for a, b in zip(jax.tree.leaves(loaded["params"]), jax.tree.leaves(kept), strict=True):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(state.ema_params),
                                                       jax.tree.leaves(state.generator.params)))
    latents = sample_latents(3, 6, 16)
    np.testing.assert_array_equal(sampling.generate(trained_workdir, latents=latents), ema)
    expected = convert.build_model(arch).apply(variables, latents.astype(np.float32), train=False)
    np.testing.assert_allclose(ema, np.asarray(expected), atol=1e-6)
    assert not np.array_equal(sampling.generate(trained_workdir, latents=latents, use_ema=False), ema)


def test_batches_stream_with_one_shape_and_batch_stats_differ(trained_workdir):
    arch, variables = sampling.load_generator(trained_workdir)
    latents = sample_latents(0, 10, 16)
    whole = np.concatenate(list(sampling.iterate_generate(arch, variables, latents, batch_size=10)))
    streamed = list(sampling.iterate_generate(arch, variables, latents, batch_size=4))
    assert [len(b) for b in streamed] == [4, 4, 2]
    np.testing.assert_allclose(np.concatenate(streamed), whole, atol=1e-6)  # eval mode: per example
    train_mode = np.concatenate(list(sampling.iterate_generate(arch, variables, latents, 10, batch_stats=True)))
    assert np.abs(train_mode - whole).max() > 0.05 * np.abs(whole).max()


@pytest.mark.parametrize("out", ["grid.png", "images.npy", "folder"])
def test_sample_script_outputs(trained_workdir, tmp_path, out):
    target = tmp_path / out
    assert sample_cli.main(["--checkpoint", str(trained_workdir), "--out", str(target), "--num", "5"]) == 0
    expected = sampling.generate(trained_workdir, num=5, seed=0)
    if out.endswith(".png"):
        assert np.asarray(Image.open(target)).shape == (2 * 34 + 2, 3 * 34 + 2)
    elif out.endswith(".npy"):
        np.testing.assert_allclose(np.load(target), expected, atol=1e-6)
    else:
        files = sorted(target.glob("*.png"))
        assert [f.name for f in files] == [f"{i:06d}.png" for i in range(5)]
        first = np.asarray(Image.open(files[0]), np.float32) / 127.5 - 1
        np.testing.assert_allclose(first, expected[0, ..., 0], atol=1 / 127.5 + 1e-6)
    assert sample_cli.main(["--checkpoint", str(trained_workdir), "--out", str(target)]) == 1  # no --force


def test_wrong_latent_size_and_missing_checkpoint_are_errors(trained_workdir, tmp_path, capsys):
    np.save(tmp_path / "z.npy", np.zeros((2, 7), np.float32))
    assert sample_cli.main(["--checkpoint", str(trained_workdir), "--latents", str(tmp_path / "z.npy"),
                            "--out", str(tmp_path / "x.npy")]) == 1
    assert "nz=16" in capsys.readouterr().err
    assert sample_cli.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "y.npy")]) == 1
    assert "not a jaxgan model folder" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "y.npy").exists()
