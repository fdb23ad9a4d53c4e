"""`jaxgan.restore` and scripts/restore.py: any size, bit depth and band count in, the same out;
known pixels kept exactly; clear errors and nothing half-written. Restorers here are freshly
initialised (tiny widths): these tests check the tool, not the training."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from PIL import Image

from jaxgan import checkpoint, model_folder, run_info
from jaxgan import config as config_lib
from jaxgan.data.images import ImageError
from jaxgan.state import init_state, make_modules, sampled_variables
from jaxgan.tasks import get_task
from jaxgan.tasks.restore import files
from jaxgan.tasks.restore.api import load_restorer, restore
from jaxgan.tasks.restore.files import read_any, write_any
from scripts import evaluate as evaluate_script
from scripts import restore as restore_script


def make_workdir(path, name, **changes):
    """A workdir holding one checkpoint of a fresh state, as the trainer writes it."""
    config = config_lib.load(name).replace(
        image_size=32, restorer_width=8, ngf=8, ndf=8, nz=16, batch_size=4, **changes
    )
    models = make_modules(config)
    state = jax.jit(functools.partial(init_state, config, models))()
    run_info.write_run_info(path, config)
    checkpoints = checkpoint.Checkpoints(path, async_save=False)
    checkpoints.save(1, state, {"data_position": 1})
    checkpoints.close()
    return path, config, state


@pytest.fixture(scope="module")
def inpainter(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("inpaint"), "restore_inpaint64")


@pytest.fixture(scope="module")
def gray_denoiser(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("gray"), "restore_gray64")


@pytest.fixture(scope="module")
def gan_workdir(tmp_path_factory):
    return make_workdir(tmp_path_factory.mktemp("gan"), "dcgan32")


def hole_mask(height, width):
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : height // 3 + 40, width // 2 : width // 2 + 50] = 255  # white = missing
    return mask


def test_cli_inpaints_a_photo_of_another_size_and_keeps_known_pixels(inpainter, tmp_path):
    photo = skimage.data.rocket()  # 427 x 640, not the restorer's 32 x 32
    Image.fromarray(photo).save(tmp_path / "rocket.png")
    Image.fromarray(hole_mask(*photo.shape[:2])).save(tmp_path / "mask.png")
    code = restore_script.main(
        [
            "--checkpoint",
            str(inpainter[0]),
            "--input",
            str(tmp_path / "rocket.png"),
            "--mask",
            str(tmp_path / "mask.png"),
            "--out",
            str(tmp_path / "out.png"),
        ]
    )
    assert code == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    hole = hole_mask(*photo.shape[:2]) > 0
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~hole], photo[~hole])
    assert np.mean(out[hole] != photo[hole]) > 0.5  # the hole is filled by the model


def test_16bit_grayscale_comes_back_16bit(gray_denoiser, inpainter, tmp_path):
    ramp = np.linspace(0, 65535, 70 * 90).reshape(70, 90)
    scan = (
        (ramp + np.random.default_rng(0).normal(0, 3000, ramp.shape))
        .clip(0, 65535)
        .astype(np.uint16)
    )
    write_any(tmp_path / "scan.png", scan[..., None])
    assert read_any(tmp_path / "scan.png").dtype == np.uint16
    code = restore_script.main(
        [
            "--checkpoint",
            str(gray_denoiser[0]),
            "--input",
            str(tmp_path / "scan.png"),
            "--out",
            str(tmp_path / "clean.png"),
        ]
    )
    assert code == 0
    out = read_any(tmp_path / "clean.png")
    assert out.shape == (70, 90, 1) and out.dtype == np.uint16
    assert np.any(out % 257 != 0)  # not 8-bit levels scaled up: the full 16-bit depth
    assert not np.array_equal(out, scan)
    # the same scan through a colour restorer: three equal channels in, their luma out; a mask keeps
    # the rest
    mask = np.zeros((70, 90), bool)
    mask[10:30, 20:60] = True
    result = restore(scan, inpainter[0], mask)
    assert result.shape == scan.shape and result.dtype == np.uint16
    np.testing.assert_array_equal(result[~mask], scan[~mask])


def test_float_and_multiband_arrays(gray_denoiser, inpainter):
    rng = np.random.default_rng(1)
    bands = rng.uniform(-50, 950, (40, 45, 5)).astype(np.float32)  # 5 bands, values in [-50, 950]
    out = restore(bands, gray_denoiser[0], value_range=(-50.0, 950.0))
    assert out.shape == bands.shape and out.dtype == np.float32
    assert out.min() >= -50 and out.max() <= 950
    # each band is restored on its own: band 2 alone gives the same as band 2 of the stack
    alone = restore(bands[..., 2], gray_denoiser[0], value_range=(-50.0, 950.0))
    np.testing.assert_allclose(alone, out[..., 2], atol=1e-3)
    with pytest.raises(ImageError, match="5 bands"):
        restore(bands, inpainter[0], np.zeros((40, 45), bool), value_range=(-50.0, 950.0))


def test_tiff_round_trip_keeps_dtype_and_bands(tmp_path):
    for array in (
        np.arange(24 * 30 * 3, dtype=np.uint16).reshape(24, 30, 3),
        np.linspace(0, 1, 24 * 30 * 4, dtype=np.float32).reshape(24, 30, 4),
    ):
        write_any(tmp_path / "image.tif", array)
        back = read_any(tmp_path / "image.tif")
        assert back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)


def test_converted_folder_restores_like_the_workdir(inpainter, tmp_path):
    workdir, config, state = inpainter
    folder = model_folder.save_model(
        tmp_path / "model",
        get_task("restore").arch(config, "restorer"),
        jax.device_get(sampled_variables(state, config, use_ema=False)),
    )
    image = skimage.data.coffee()[:50, :70]
    mask = hole_mask(50, 70) > 0
    np.testing.assert_array_equal(restore(image, folder, mask), restore(image, workdir, mask))


def test_clear_errors_and_nothing_half_written(inpainter, gan_workdir, tmp_path):
    photo = skimage.data.coffee()[:60, :80]
    Image.fromarray(photo).save(tmp_path / "a.png")
    Image.fromarray(hole_mask(50, 50)).save(tmp_path / "small_mask.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")

    def run(*args):
        return restore_script.main(["--checkpoint", str(inpainter[0]), *args])

    assert (
        run(
            "--input",
            str(tmp_path / "a.png"),
            "--mask",
            str(tmp_path / "small_mask.png"),
            "--out",
            str(tmp_path / "x.png"),
        )
        == 1
    )
    assert run("--input", str(tmp_path / "broken.png"), "--out", str(tmp_path / "y.png")) == 1
    assert (
        run("--input", str(tmp_path / "a.png"), "--out", str(tmp_path / "z.png")) == 1
    )  # inpainting: no mask
    assert not any((tmp_path / n).exists() for n in ("x.png", "y.png", "z.png"))
    with pytest.raises(ImageError, match="mask is 50x50.*80x60"):
        restore(photo, inpainter[0], tmp_path / "small_mask.png")
    with pytest.raises(ImageError, match="broken.png"):
        restore(tmp_path / "broken.png", inpainter[0], np.ones((60, 80), bool))
    with pytest.raises(checkpoint.CheckpointError, match="'gan' run"):
        load_restorer(gan_workdir[0])
    # a folder whose first image fails (its mask is too small): error, and no output folder at all
    # (a folder is written file by file, and made only for its first file)
    folder = tmp_path / "inputs"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "good.png")
    (folder / "zbad.png").write_bytes(b"nope")
    assert (
        run(
            "--input",
            str(folder),
            "--mask",
            str(tmp_path / "small_mask.png"),
            "--out",
            str(tmp_path / "outs"),
        )
        == 1
    )
    assert not (tmp_path / "outs").exists()


def test_folder_in_folder_out_with_a_mask_folder(inpainter, tmp_path):
    inputs, masks = tmp_path / "in", tmp_path / "masks"
    (inputs / "sub").mkdir(parents=True)
    (masks / "sub").mkdir(parents=True)
    images = {
        "one.png": skimage.data.coffee()[:40, :60],
        "sub/two.jpg": skimage.data.chelsea()[:50, :45],
    }
    for name, image in images.items():
        Image.fromarray(image).save(inputs / name)
        Image.fromarray(hole_mask(*image.shape[:2])).save((masks / name).with_suffix(".png"))
    assert (
        restore_script.main(
            [
                "--checkpoint",
                str(inpainter[0]),
                "--input",
                str(inputs),
                "--mask",
                str(masks),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    for name, image in images.items():
        out = np.asarray(Image.open(tmp_path / "out" / name))
        original = np.asarray(Image.open(inputs / name))
        hole = hole_mask(*image.shape[:2]) > 0
        assert out.shape == original.shape
        if name.endswith(".png"):
            np.testing.assert_array_equal(out[~hole], original[~hole])


def test_an_interrupted_folder_restore_resumes_and_force_replaces_it(
    inpainter, tmp_path, monkeypatch, capsys
):
    inputs, masks = tmp_path / "in", tmp_path / "masks"
    names = ["a.png", "b.png", "sub/c.png"]
    for index, name in enumerate(names):
        image = skimage.data.coffee()[10 * index : 10 * index + 40, :60]
        for folder, array in ((inputs, image), (masks, hole_mask(40, 60))):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(folder / name)

    def run(out, *args):
        return restore_script.main(
            [
                "--checkpoint",
                str(inpainter[0]),
                "--input",
                str(inputs),
                "--mask",
                str(masks),
                "--out",
                str(out),
                *args,
            ]
        )

    def contents(folder):
        return {name: (folder / name).read_bytes() for name in names if (folder / name).exists()}

    real_write = files.write_any

    def fail_after(count, before_each=lambda: None):
        written = []

        def write_any(path, array):
            before_each()
            if len(written) == count:
                raise RuntimeError("killed")
            written.append(path)
            return real_write(path, array)

        monkeypatch.setattr(files, "write_any", write_any)
        return written

    assert run(tmp_path / "whole") == 0
    expected = contents(tmp_path / "whole")
    out = tmp_path / "out"
    fail_after(2)
    with pytest.raises(RuntimeError, match="killed"):
        run(out)
    assert contents(out) == {
        name: expected[name] for name in names[:2]
    }  # the images done before the failure
    written = fail_after(None)
    capsys.readouterr()
    assert run(out) == 0
    assert f"skipping 2 images already written in {out}; writing 1" in capsys.readouterr().out
    assert [path.name for path in written] == ["c.png"] and contents(out) == expected
    # other options into the same folder: an error naming the option, the folder untouched
    assert run(out, "--overlap", "4") == 1
    error = capsys.readouterr().err
    assert str(out) in error and "overlap was None, now 4" in error and "--force" in error
    assert contents(out) == expected
    # --force replaces the images in place: a failure midway leaves every file there
    fail_after(1, lambda: len(contents(out)) == 3 or pytest.fail("an old image went missing"))
    with pytest.raises(RuntimeError, match="killed"):
        run(out, "--overlap", "4", "--force")
    assert sorted(contents(out)) == names
    fail_after(None)
    assert run(out, "--overlap", "4", "--force") == 0
    assert run(tmp_path / "reference", "--overlap", "4") == 0
    assert contents(out) == contents(tmp_path / "reference")


def test_evaluate_restore_prints_its_table_and_writes_json(inpainter, tmp_path, capsys):
    code = evaluate_script.main(
        [
            "restore",
            "--degradation",
            "centre_square",
            "--checkpoint",
            str(inpainter[0]),
            "--num-crops",
            "3",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    table = capsys.readouterr().out
    assert (
        "| biharmonic (scikit-image) |" in table
        and "hole PSNR (dB)" in table
        and "| restorer (" in table
    )
    report = json.loads((tmp_path / "r.json").read_text())
    biharmonic = report["results"]["biharmonic (scikit-image)"]
    assert biharmonic["psnr"] - biharmonic["psnr_hole"] > 3  # the hole is a quarter of the image
    assert report["num_crops"] == 3 and report["image_size"] == 32
    assert (
        evaluate_script.main(
            [
                "restore",
                "--degradation",
                "noise",
                "--checkpoint",
                str(inpainter[0]),
                "--num-crops",
                "2",
            ]
        )
        == 1
    )
    assert "trained for 'mixed_holes', not 'noise'" in capsys.readouterr().err


def test_super_resolution_upsamples_as_training_did_and_checks_the_scale(tmp_path):
    """restore(..., scale=4) of a 4x restorer upsamples with the training degradation's upsampler
    (`degradations.upsample`): the same as giving that upsampled image to the same weights in a
    converted folder (which takes any scale); another scale is refused, naming the right one."""
    from jaxgan.tasks.restore.degradations import upsample

    workdir, config, state = make_workdir(tmp_path / "sr", "restore_sr4x64")
    folder = model_folder.save_model(
        tmp_path / "model",
        get_task("restore").arch(config, "restorer"),
        jax.device_get(sampled_variables(state, config)),
    )
    low = skimage.data.astronaut()[100:124, 200:236]  # 24 x 36, 8-bit
    restored = restore(low, workdir, scale=4)
    assert restored.shape == (96, 144, 3) and restored.dtype == np.uint8
    unit = np.asarray(upsample(jnp.asarray(low[None] / 127.5 - 1), (96, 144)))[0]
    expected = restore(((unit + 1) / 2).astype(np.float32), folder)  # float [0, 1] in and out
    np.testing.assert_array_equal(restored, np.round(expected * 255).astype(np.uint8))
    with pytest.raises(
        ValueError, match=r"--scale 2: .* trained for 4x super-resolution; give --scale 4"
    ):
        restore(low, workdir, scale=2)
    with pytest.raises(ValueError, match=r"--scale 1: .* give --scale 4"):
        restore(low, workdir)
