"""DiffAugment: what each operation does to pixels, its gradient, its host draws and its config
errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.data.pipeline import keyed_draws
from jaxgan.tasks.gan.augment import (
    BRIGHTNESS,
    CONTRAST,
    CUTOUT_COL,
    CUTOUT_ROW,
    NUM_DRAWS,
    SATURATION,
    SHIFT_COLS,
    SHIFT_ROWS,
    USES,
    cutout_size,
    diff_augment,
    draws,
    parse_policy,
    shift_limit,
)

SIZE = 16


def images(n: int = 4, nc: int = 3) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, SIZE, SIZE, nc)).astype(np.float32)


def one_draw(**values: float) -> np.ndarray:
    """(1, NUM_DRAWS): colour factors that leave colour unchanged, no shift, and the given
    columns."""
    draw = np.zeros((1, NUM_DRAWS))
    draw[0, [BRIGHTNESS, SATURATION, CONTRAST]] = 0.5  # +0, x1, x1
    for column, value in values.items():
        draw[0, globals()[column]] = value
    return draw


def test_translation_moves_pixels_and_pads_with_zeros():
    x = images(1)
    out = np.asarray(
        diff_augment(
            jnp.asarray(x), jnp.asarray(one_draw(SHIFT_ROWS=3, SHIFT_COLS=-2)), ("translation",)
        )
    )
    expected = np.zeros_like(x)
    expected[0, : SIZE - 3, 2:] = x[0, 3:, : SIZE - 2]  # out[i, j] = x[i + 3, j - 2]
    np.testing.assert_array_equal(out, expected)


def test_cutout_zeroes_one_square_of_half_the_side_clipped_at_the_border():
    x = images(2)
    cut = cutout_size(SIZE)
    draw = np.concatenate(
        [one_draw(CUTOUT_ROW=5, CUTOUT_COL=9), one_draw(CUTOUT_ROW=0, CUTOUT_COL=SIZE)]
    )
    out = np.asarray(diff_augment(jnp.asarray(x), jnp.asarray(draw), ("cutout",)))
    for n, (row, col) in enumerate(((5, 9), (0, SIZE))):
        hole = np.zeros((SIZE, SIZE), bool)
        hole[
            max(row - cut // 2, 0) : row - cut // 2 + cut,
            max(col - cut // 2, 0) : col - cut // 2 + cut,
        ] = True
        np.testing.assert_array_equal(out[n][hole], 0)
        np.testing.assert_array_equal(out[n][~hole], x[n][~hole])
    assert (out[0] == 0).all(axis=-1).sum() == cut * cut


def test_colour_is_brightness_then_saturation_then_contrast():
    x = images(1)
    draw = one_draw()
    draw[0, [BRIGHTNESS, SATURATION, CONTRAST]] = (0.9, 0.25, 0.8)
    out = np.asarray(diff_augment(jnp.asarray(x), jnp.asarray(draw), ("color",)))
    y = x.astype(np.float64) + 0.4
    y = (y - y.mean(-1, keepdims=True)) * 0.5 + y.mean(-1, keepdims=True)
    y = (y - y.mean()) * 1.3 + y.mean()
    np.testing.assert_allclose(out, y, atol=2e-6)
    neutral = np.asarray(diff_augment(jnp.asarray(x), jnp.asarray(one_draw()), ("color",)))
    np.testing.assert_allclose(neutral, x, atol=1e-6)


def test_augmentation_is_differentiable_in_the_images():
    x, draw = jnp.asarray(images(2)), jnp.asarray(draws(0, 1, 2, SIZE)[:, 0])
    operations = parse_policy("color,translation,cutout")
    grad = jax.grad(lambda x: jnp.sum(diff_augment(x, draw, operations) ** 2))(x)
    assert float(jnp.max(jnp.abs(grad))) > 0.1
    moved = jax.grad(lambda x: jnp.sum(diff_augment(x, draw, ("translation", "cutout")) ** 2))(x)
    seen = np.zeros(
        x.shape, bool
    )  # the input pixels that land in the output, read off a direct loop
    for n in range(2):
        out = np.asarray(diff_augment(jnp.ones_like(x), draw, ("translation", "cutout")))[n] != 0
        rows, cols = np.nonzero(out.any(-1))
        seen[n, rows + int(draw[n, SHIFT_ROWS]), cols + int(draw[n, SHIFT_COLS])] = True
    np.testing.assert_array_equal(
        np.asarray(moved) != 0, seen
    )  # shifted-out and cut-out pixels get none


def test_no_operations_is_the_identity():
    x = jnp.asarray(images(2))
    assert diff_augment(x, jnp.zeros((2, NUM_DRAWS)), ()) is x


def test_draws_are_keyed_by_seed_and_step_and_split_by_rows():
    whole = draws(3, 7, 8, 64)
    assert whole.shape == (8, USES, NUM_DRAWS)
    np.testing.assert_array_equal(
        np.concatenate([draws(3, 7, 8, 64, slice(i, i + 2)) for i in range(0, 8, 2)]), whole
    )
    assert not np.array_equal(draws(3, 8, 8, 64), whole) and not np.array_equal(
        draws(4, 7, 8, 64), whole
    )
    big = draws(0, 0, 4096, 64)
    limit, cut = shift_limit(64), cutout_size(64)
    assert (limit, cut) == (8, 32)
    shifts, centres = big[..., [SHIFT_ROWS, SHIFT_COLS]], big[..., [CUTOUT_ROW, CUTOUT_COL]]
    assert shifts.min() == -limit and shifts.max() == limit and np.all(shifts == np.round(shifts))
    assert centres.min() == 0 and centres.max() == 64
    colour = big[..., [BRIGHTNESS, SATURATION, CONTRAST]]
    assert 0 <= colour.min() and colour.max() < 1


def test_batches_carry_the_draws_only_when_asked():
    drawn = keyed_draws(1, 2, 8, slice(2, 6), nz=4, augment_size=32, dtype=np.float32)
    assert drawn["latents"].shape == (4, 4) and drawn["augment"].dtype == np.float32
    np.testing.assert_array_equal(drawn["augment"], draws(1, 2, 8, 32)[2:6].astype(np.float32))
    assert set(keyed_draws(1, 2, 8, slice(None), nz=4, augment_size=0, dtype=np.float32)) == {
        "latents"
    }


def test_policy_names_are_checked():
    assert parse_policy("cutout, color") == ("color", "cutout")
    assert parse_policy("") == ()
    with pytest.raises(
        config_lib.ConfigError, match="'augment'.*unknown augmentation 'flip'.*color, translation"
    ):
        config_lib.load("dcgan32", {"augment": "translation,flip"})
