"""Tiling: with the model replaced by a pixelwise function the tiled result equals the direct one,
the blending weights are a partition of unity, and an image of exactly one tile gives the model's
output."""

import numpy as np
import pytest

from jaxgan.tasks.restore.tiling import (
    axis_layout,
    even_batch,
    fitted_tile,
    tiled_apply,
    weight_sum,
)


def pixelwise(tiles, masks):
    return np.tanh(1.5 * tiles) * (1 + masks) - 0.25 * tiles**2


def image_and_mask(height, width, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (height, width, channels)).astype(np.float32)
    mask = (rng.random((height, width, 1)) < 0.3).astype(np.float32)
    return image, mask


@pytest.mark.parametrize("length", [1, 20, 64, 65, 100, 427, 640, 3000])
@pytest.mark.parametrize("overlap", [0, 8, 16, 32])
@pytest.mark.parametrize("shift", [0, 32])
def test_blending_weights_sum_to_one_everywhere(length, overlap, shift):
    layout = axis_layout(length, 64, overlap, shift)
    np.testing.assert_allclose(weight_sum(layout), 1.0, atol=1e-12)
    assert (
        layout.pad_before >= overlap or len(layout.starts) == 1
    )  # image edges never at a tile's edge ramp
    assert np.all(layout.window > 0)


@pytest.mark.parametrize("shape", [(427, 640), (64, 64), (20, 30), (1, 90), (65, 200), (129, 64)])
@pytest.mark.parametrize("shift", [0, 32])
def test_pixelwise_model_tiled_equals_direct(shape, shift):
    image, mask = image_and_mask(*shape)
    tiled = tiled_apply(image, mask, pixelwise, tile=64, overlap=16, batch_size=7, shift=shift)
    assert tiled.shape == image.shape
    np.testing.assert_allclose(tiled, pixelwise(image, mask), atol=1e-6)


def test_large_image_streams_through_fixed_batches():
    image, mask = image_and_mask(3000, 4000, channels=1, seed=1)
    shapes = set()

    def model(tiles, masks):
        shapes.add(tiles.shape)
        return pixelwise(tiles, masks)

    tiled = tiled_apply(image, mask, model, tile=64, overlap=16, batch_size=512)
    tiles = len(axis_layout(3000, 64, 16).starts) * len(axis_layout(4000, 64, 16).starts)
    batches = -(-tiles // 512)
    assert shapes == {(-(-tiles // batches), 64, 64, 1)}  # one compiled shape, batches evened
    np.testing.assert_allclose(tiled, pixelwise(image, mask), atol=1e-6)


@pytest.mark.parametrize("count", [1, 7, 8, 9, 25, 63, 64, 65])
def test_even_batches_pad_less_than_a_tile_a_batch(count):
    batch = even_batch(count, 8)
    batches = -(-count // batch)
    assert batch <= 8 and batches == -(-count // 8)  # as few batches as fixed ones
    assert 0 <= batches * batch - count < batches


def test_fitted_tile_computes_fewer_pixels_than_fixed_tiles():
    def computed(height, width, tile):
        count = len(axis_layout(height, tile, 32).starts) * len(axis_layout(width, tile, 32).starts)
        return -(-count // even_batch(count, 8)) * even_batch(count, 8) * tile * tile

    assert fitted_tile(1024, 1024, 32, 16, 512, 8) == 384  # 9 tiles (10 computed), not 4 x 4
    for height, width in [(1024, 1024), (427, 640), (3000, 4000), (512, 100)]:
        tile = fitted_tile(height, width, 32, 16, 512, 8)
        assert tile % 16 == 0 and 128 <= tile <= 512
        assert computed(height, width, tile) <= computed(height, width, 256)  # the old tiles
        image, mask = image_and_mask(height, width, channels=1)
        tiled = tiled_apply(image, mask, pixelwise, tile, overlap=32, batch_size=8)
        np.testing.assert_allclose(tiled, pixelwise(image, mask), atol=1e-6)


def test_one_tile_image_gives_the_models_own_output():
    image, mask = image_and_mask(64, 64)

    def not_pixelwise(tiles, masks):  # depends on the whole tile: mirrored, plus the tile mean
        return tiles[:, ::-1, ::-1] + tiles.mean(axis=(1, 2, 3), keepdims=True) + masks

    out = tiled_apply(image, mask, not_pixelwise, tile=64, overlap=16)
    np.testing.assert_array_equal(out, not_pixelwise(image[None], mask[None])[0])


def test_skip_known_computes_only_tiles_with_a_hole():
    image = np.zeros((300, 400, 3), np.float32)
    mask = np.zeros((300, 400, 1), np.float32)
    mask[140:150, 190:200] = 1
    counted = []

    def model(tiles, masks):
        counted.append(int((masks.reshape(len(masks), -1).max(axis=1) > 0).sum()))
        return tiles + 1

    out = tiled_apply(image, mask, model, tile=64, overlap=16, batch_size=4, skip_known=True)
    assert 1 <= sum(counted) <= 4  # the tiles around one small hole, not the 7 x 9 grid
    np.testing.assert_allclose(out[140:150, 190:200], 1.0, atol=1e-6)  # the hole is fully restored


def test_bad_arguments():
    image, mask = image_and_mask(70, 70)
    with pytest.raises(ValueError, match="mask shape"):
        tiled_apply(image, mask[:-1], pixelwise, 64, 16)
    with pytest.raises(ValueError, match="overlap"):
        axis_layout(100, 64, 40)
