"""Data: image folders of every kind, corrupt files, built-in sets, and an order independent of
layout."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from jaxgan.config import Config
from jaxgan.data import images, order
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import Digits, Folder, Photos, make_source


def write_mixed_folder(folder, count: int = 6):
    """PNG/JPEG/WebP/TIFF files, 8- and 16-bit, grayscale and colour, in nested folders, of odd
    sizes."""
    rng = np.random.default_rng(0)
    (folder / "nested" / "deeper").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (50, 30), dtype=np.uint8)).save(
        folder / "nested" / "b.jpg"
    )
    Image.fromarray(rng.integers(0, 256, (33, 33, 3), dtype=np.uint8)).save(
        folder / "nested" / "c.webp"
    )
    Image.fromarray(rng.integers(0, 65536, (48, 48), dtype=np.uint16)).save(
        folder / "nested" / "deeper" / "d.tif"
    )
    Image.fromarray(rng.integers(0, 65536, (20, 70), dtype=np.uint16)).save(folder / "e16.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)).save(folder / "f_rgba.png")
    (folder / "notes.txt").write_text("not an image")
    return 6


@pytest.mark.parametrize("nc", [1, 3])
def test_folder_reads_every_kind_as_uint8_at_size(tmp_path, nc):
    count = write_mixed_folder(tmp_path)
    source = Folder(str(tmp_path), 32, nc)
    assert len(source) == count
    for index in range(count):
        example = source.load(index, index)
        assert example.shape == (32, 32, nc) and example.dtype == np.uint8


def test_sixteen_bit_keeps_its_precision_until_quantised(tmp_path):
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    array = images.read_image(tmp_path / "ramp.png")
    assert array.dtype == np.uint16 and array.max() == ramp.max()
    np.testing.assert_allclose(images.to_unit(array)[..., 0], ramp / 65535, atol=1e-7)
    np.testing.assert_array_equal(images.from_unit(images.to_unit(array), np.uint16), array)


def test_float_range_clipped_with_warning_and_mapped_back():
    values = np.array([[[-0.5], [0.25], [1.5]]], np.float32)
    with pytest.warns(UserWarning, match="clipped"):
        unit = images.to_unit(values, (0.0, 1.0), name="scan.npy")
    np.testing.assert_array_equal(unit[..., 0], [[0, 0.25, 1]])
    np.testing.assert_allclose(
        images.from_unit(images.to_unit(values * 100, (-50, 150)), np.float32, (-50, 150)),
        values * 100,
        atol=1e-4,
    )


def test_empty_folder_and_folder_without_images_are_clear_errors(tmp_path):
    with pytest.raises(images.ImageError, match=f"{tmp_path}.*holds no images"):
        make_source(Config(data=str(tmp_path)))
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(images.ImageError, match="holds no images"):
        Folder(str(tmp_path), 32, 3)
    with pytest.raises(images.ImageError, match="does not exist"):
        Folder(str(tmp_path / "missing"), 32, 3)


def test_corrupt_files_are_skipped_named_counted_and_replaced_deterministically(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(8):
        Image.fromarray(np.full((16, 16, 3), i * 30, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "5.png").write_bytes(rng.bytes(100))
    source = Folder(str(tmp_path), 16, 3)

    def all_batches(rows: slice):
        batches = Batches(source, batch_size=4, data_seed=7, rows=rows)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = [batches.batch(step)["images"] for step in range(6)]
        return got, batches, caught

    whole, batches, caught = all_batches(slice(None))
    assert sorted(batches.skipped) == [3, 5]
    assert any("3.png" in str(w.message) for w in caught) and any(
        "5.png" in str(w.message) for w in caught
    )
    values = {int(image[0, 0, 0]) for batch in whole for image in batch}
    assert values <= {i * 30 for i in range(8) if i not in (3, 5)}
    halves = [all_batches(slice(0, 2))[0], all_batches(slice(2, 4))[0]]  # two processes' rows
    for step in range(6):
        np.testing.assert_array_equal(
            np.concatenate([halves[0][step], halves[1][step]]), whole[step]
        )


def test_order_is_the_same_for_any_split_and_covers_each_epoch():
    source = Digits(32, 1, "test")
    whole = Batches(source, 24, data_seed=3, latent_seed=5, nz=8)
    for step in (0, 11, 12, 13):  # 297 examples: batch 12 spans the epoch boundary
        parts = [
            Batches(source, 24, 3, slice(i * 6, i * 6 + 6), latent_seed=5, nz=8).batch(step)
            for i in range(4)
        ]
        expected = whole.batch(step)
        for key in ("images", "latents"):
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), expected[key])
    stream = order.ExampleOrder(len(source), 3)
    assert sorted(stream.example(p) for p in range(297)) == list(range(297))
    assert [stream.example(p) for p in range(297)] != [stream.example(p) for p in range(297, 594)]


def test_latents_are_keyed_by_seed_and_step_only():
    a = order.latents(0, 5, 8, 4)
    assert a.shape == (8, 4)
    np.testing.assert_array_equal(a, order.latents(0, 5, 8, 4))
    np.testing.assert_array_equal(a[2:6], order.latents(0, 5, 8, 4, slice(2, 6)))
    assert not np.array_equal(a, order.latents(0, 6, 8, 4)) and not np.array_equal(
        a, order.latents(1, 5, 8, 4)
    )


def test_builtin_digits_and_photos():
    digits = Digits(32, 3, "train")
    assert len(digits) == 1500 and len(Digits(32, 1, "test")) == 297
    example = digits.load(0, 0)
    assert example.shape == (32, 32, 3) and example.dtype == np.uint8 and example.max() > 200
    assert np.array_equal(example[..., 0], example[..., 2])
    photos = Photos(64, 3, "train", seed=0)
    first, again, other = photos.load(0, 10), photos.load(0, 10), photos.load(0, 11)
    assert (
        first.shape == (64, 64, 3)
        and np.array_equal(first, again)
        and not np.array_equal(first, other)
    )
    assert set(Photos(64, 3, "train").names).isdisjoint(Photos(64, 3, "test").names)
    assert make_source(Config(data="")).describe().startswith("built-in 'digits'")


def test_loader_threads_give_the_same_batches():
    source = Photos(32, 3, "train", seed=1)
    plain = Batches(source, 8, 1)
    threaded = list(Batches(source, 8, 1).iterate(3, 9, threads=4))
    for step, batch in zip(range(3, 9), threaded, strict=True):
        np.testing.assert_array_equal(batch["images"], plain.batch(step)["images"])
