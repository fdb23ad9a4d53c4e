"""Generating images from a training workdir: the Python API and scripts/sample.py's outputs."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import convert, loading, monitor, sampling
from jaxgan.data.order import sample_latents
from scripts import sample as sample_cli


def test_generate_uses_ema_by_default_and_is_deterministic(trained_workdir):
    ema = sampling.generate(trained_workdir, num=6, seed=3)
    assert ema.shape == (6, 32, 32, 1) and ema.dtype == np.float32
    assert np.abs(ema).max() <= 1
    np.testing.assert_array_equal(ema, sampling.generate(trained_workdir, num=6, seed=3))
    _, state, _ = loading.restore_training_state(trained_workdir)
    arch, variables = sampling.load_generator(trained_workdir)
    _, live_variables = sampling.load_generator(trained_workdir, use_ema=False)
    for loaded, kept in (
        (variables, state.ema_params),
        (live_variables, state.models["generator"].params),
    ):
        for a, b in zip(jax.tree.leaves(loaded["params"]), jax.tree.leaves(kept), strict=True):
            np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(
            jax.tree.leaves(state.ema_params), jax.tree.leaves(state.models["generator"].params)
        )
    )
    latents = sample_latents(3, 6, 16)
    np.testing.assert_array_equal(sampling.generate(trained_workdir, latents=latents), ema)
    expected = convert.build_model(arch).apply(variables, latents.astype(np.float32), train=False)
    np.testing.assert_allclose(ema, np.asarray(expected), atol=1e-6)
    assert not np.array_equal(
        sampling.generate(trained_workdir, latents=latents, use_ema=False), ema
    )


def test_batches_stream_with_one_shape_and_batch_stats_differ(trained_workdir):
    arch, variables = sampling.load_generator(trained_workdir)
    latents = sample_latents(0, 10, 16)
    whole = np.concatenate(list(sampling.iterate_generate(arch, variables, latents, batch_size=10)))
    streamed = list(sampling.iterate_generate(arch, variables, latents, batch_size=4))
    assert [len(b) for b in streamed] == [4, 4, 2]
    np.testing.assert_allclose(np.concatenate(streamed), whole, atol=1e-6)  # eval mode: per example
    train_mode = np.concatenate(
        list(sampling.iterate_generate(arch, variables, latents, 10, batch_stats=True))
    )
    assert np.abs(train_mode - whole).max() > 0.05 * np.abs(whole).max()


@pytest.mark.parametrize("out", ["grid.png", "images.npy", "folder"])
def test_sample_script_outputs(trained_workdir, tmp_path, out):
    target = tmp_path / out
    assert (
        sample_cli.main(["--checkpoint", str(trained_workdir), "--out", str(target), "--num", "5"])
        == 0
    )
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
    assert (
        sample_cli.main(["--checkpoint", str(trained_workdir), "--out", str(target)]) == 1
    )  # no --force


def test_wrong_latent_size_and_missing_checkpoint_are_errors(trained_workdir, tmp_path, capsys):
    np.save(tmp_path / "z.npy", np.zeros((2, 7), np.float32))
    assert (
        sample_cli.main(
            [
                "--checkpoint",
                str(trained_workdir),
                "--latents",
                str(tmp_path / "z.npy"),
                "--out",
                str(tmp_path / "x.npy"),
            ]
        )
        == 1
    )
    assert "nz=16" in capsys.readouterr().err
    assert sample_cli.main(["--checkpoint", str(tmp_path), "--out", str(tmp_path / "y.npy")]) == 1
    assert "not a jaxgan model folder" in capsys.readouterr().err
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "y.npy").exists()


REAL_SAVE_PNG = monitor.save_png


def run_sample(workdir, out, *args):
    return sample_cli.main(["--checkpoint", str(workdir), "--out", str(out), *args])


def png_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


def fail_after(monkeypatch, count, before_each=None):
    """Make the PNG writer raise (as a killed run stops) after `count` more files; `before_each`
    checks the folder."""
    written = []

    def save_png(pixels, path):
        if before_each is not None:
            before_each()
        if len(written) == count:
            raise RuntimeError("killed")
        REAL_SAVE_PNG(pixels, path)
        written.append(path)

    monkeypatch.setattr(monitor, "save_png", save_png)
    return written


@pytest.mark.parametrize("batch_stats", [False, True])
def test_some_batches_alone_are_the_images_of_a_whole_run(trained_workdir, batch_stats):
    arch, variables = sampling.load_generator(trained_workdir)
    latents = sample_latents(0, 10, 16)
    whole = np.concatenate(
        list(sampling.iterate_generate(arch, variables, latents, 4, batch_stats))
    )
    some = dict(sample_cli.generate_batches(arch, variables, latents, 4, batch_stats, [8, 4]))
    np.testing.assert_array_equal(some[4], whole[4:8])
    np.testing.assert_array_equal(some[8], whole[8:])


def test_an_interrupted_folder_output_resumes_with_the_same_images(
    trained_workdir, tmp_path, monkeypatch, capsys
):
    args = [
        "--num",
        "10",
        "--batch-size",
        "4",
        "--batch-stats",
        "--seed",
        "2",
    ]  # batch stats: batches must not shift
    assert run_sample(trained_workdir, tmp_path / "whole", *args) == 0
    expected = png_bytes(tmp_path / "whole")
    out = tmp_path / "resumed"
    fail_after(monkeypatch, 6)
    with pytest.raises(RuntimeError, match="killed"):
        run_sample(trained_workdir, out, *args)
    assert png_bytes(out) == {
        name: expected[name] for name in sorted(expected)[:6]
    }  # kept, each one whole
    starts, real_batches = [], sample_cli.generate_batches

    def recording_batches(*arguments, **keywords):
        starts.extend(arguments[-1])
        return real_batches(*arguments, **keywords)

    monkeypatch.setattr(sample_cli, "generate_batches", recording_batches)
    written = fail_after(monkeypatch, None)
    capsys.readouterr()
    assert run_sample(trained_workdir, out, *args) == 0
    printed = capsys.readouterr().out
    assert f"skipping 6 images already written in {out}; writing 4" in printed
    assert "wrote 4 image(s)" in printed and "(6 already there)" in printed
    assert starts == [4, 8] and [path.name for path in written] == [
        f"{i:06d}.png" for i in range(6, 10)
    ]
    assert png_bytes(out) == expected  # byte for byte the uninterrupted run
    assert (
        run_sample(trained_workdir, out, *args) == 0
    )  # complete: nothing generated, nothing written
    assert f"skipping 10 images already written in {out}; writing 0" in capsys.readouterr().out
    assert starts == [4, 8] and len(written) == 4


def test_force_replaces_an_old_folder_file_by_file(trained_workdir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    assert run_sample(trained_workdir, out, "--num", "12", "--batch-size", "4") == 0
    old = png_bytes(out)
    new_args = ["--num", "10", "--batch-size", "4", "--seed", "1", "--force"]
    assert run_sample(trained_workdir, tmp_path / "reference", *new_args) == 0
    expected = png_bytes(tmp_path / "reference")

    def old_output_whole():
        assert len(list(out.glob("*.png"))) == 12  # never missing, never fewer files, at any write

    fail_after(monkeypatch, 6, old_output_whole)
    with pytest.raises(RuntimeError, match="killed"):
        run_sample(trained_workdir, out, *new_args)
    now = png_bytes(out)
    assert sorted(now) == sorted(old)
    names = sorted(old)
    assert all(now[name] == expected[name] != old[name] for name in names[:6])  # replaced in place
    assert all(now[name] == old[name] for name in names[6:])
    fail_after(monkeypatch, None, old_output_whole)
    capsys.readouterr()
    assert run_sample(trained_workdir, out, *new_args) == 0  # the same command finishes the job
    printed = capsys.readouterr().out
    assert f"skipping 4 images already written in {out}" in printed  # the first whole batch
    assert "removed 2 file(s) of the old output" in printed
    assert png_bytes(out) == expected


def test_other_arguments_into_an_output_folder_are_an_error(trained_workdir, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_sample(trained_workdir, out, "--num", "3") == 0
    before = png_bytes(out)
    capsys.readouterr()
    assert run_sample(trained_workdir, out, "--num", "3", "--seed", "5") == 1
    error = capsys.readouterr().err
    assert (
        f"{out} holds the output of a job with other arguments (seed was 0, now 5)" in error
        and "--force" in error
    )
    assert run_sample(trained_workdir, out, "--num", "3", "--no-ema") == 1
    assert "ema was True, now False" in capsys.readouterr().err
    assert png_bytes(out) == before
