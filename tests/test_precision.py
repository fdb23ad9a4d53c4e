"""The config field `precision` reaches every convolution and matrix product of G, D, R (forward and
the train steps' gradients, the ConvTranspose custom VJP included) and of the metrics networks,
checked in the lowered StableHLO on CPU (nothing runs on an accelerator); on CPU it changes no
number; unknown names are errors."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.config import Config
from jaxgan.metrics import digits, inception
from jaxgan.models import Discriminator, Generator, Restorer
from jaxgan.models.generator import num_upsamplings
from jaxgan.state import init_state, make_modules
from jaxgan.tasks.gan.step import gan_step
from jaxgan.tasks.restore.step import restore_step

PRECISIONS = config_lib.PRECISIONS
OP = re.compile(r"stablehlo\.(convolution|dot_general)\b")
CONV_PRECISION = re.compile(r"#stablehlo<precision (\w+)>")
DOT_PRECISION = re.compile(r"precision = \[(\w+), (\w+)\]")
# The patch extraction of ConvTranspose's backward (`lax.conv_general_dilated_patches`) is a
# convolution whose second operand is JAX's own one-hot filter (kh, kw, 1, C*kh*kw), lowered with
# DEFAULT for that operand: exact in any precision, and XLA's GPU convolutions allow TF32 only when
# every operand is HIGH or lower.
PATCH_FILTER = re.compile(
    r"feature_group_count = (\d+) : i64.*\} : \(tensor<[\dx]+xf32>, tensor<4x4x1x(\d+)xf32>\)"
)


def ops_of(text: str) -> list[tuple[str, tuple[str, ...], str]]:
    """(op name, operand precisions, line) of every convolution and dot_general in StableHLO
    text."""
    found = []
    for line in text.splitlines():
        match = OP.search(line)
        if match:
            if match.group(1) == "convolution":
                names = tuple(CONV_PRECISION.findall(line))
            else:
                dot = DOT_PRECISION.search(line)
                names = dot.groups() if dot else ()
            found.append((match.group(1), names, line))
    return found


def is_patch_extraction(line: str) -> bool:
    match = PATCH_FILTER.search(line)
    return bool(match) and int(match.group(2)) == 16 * int(match.group(1))


def check_precision(
    text: str,
    precision: str,
    expected_ops: int | None = None,
    minimum: int = 1,
    patch_extractions: int = 0,
) -> None:
    """Every convolution and dot of `text` computes at `precision` (patch extractions: on their data
    operand); counted, so that an op without the precision cannot hide."""
    ops = ops_of(text)
    name = precision.upper()
    full = [op for op in ops if op[1] == (name, name)]
    patches = [
        op
        for op in ops
        if op[1] == (name, "DEFAULT") and op[0] == "convolution" and is_patch_extraction(op[2])
    ]
    if precision == "default":  # (DEFAULT, DEFAULT) is then both
        patches = []
    others = [op[2].strip()[:300] for op in ops if op not in full and op not in patches]
    assert not others, f"{len(others)} of {len(ops)} ops not at {name}: {others}"
    assert len(full) + len(patches) == len(ops)
    if expected_ops is not None:
        assert len(ops) == expected_ops
    assert len(ops) >= minimum
    if precision != "default":
        assert len(patches) == patch_extractions


def kernels(variables) -> int:
    """Layers with a weight matrix or kernel: each is exactly one convolution or dot in a forward
    pass."""
    return sum(
        1
        for path, _ in jax.tree_util.tree_leaves_with_path(variables["params"])
        if "kernel" in str(path[-1])
    )


def lower_forward(model, *inputs, **kwargs) -> tuple[str, int]:
    """The jitted forward's StableHLO (shapes only: nothing is computed) and the model's number of
    kernels."""
    variables = jax.eval_shape(functools.partial(model.init, **kwargs), jax.random.key(0), *inputs)
    mutable = (
        ["batch_stats"] if kwargs.get("train") else False
    )  # training mode updates BatchNorm's statistics
    text = (
        jax.jit(functools.partial(model.apply, mutable=mutable, **kwargs))
        .lower(variables, *inputs)
        .as_text()
    )
    return text, kernels(variables)


def spec(*shape: int, dtype=jnp.float32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, dtype)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("image_size", [32, 64])
def test_forward_of_g_d_r_carries_the_precision(precision, image_size):
    images, mask = spec(2, image_size, image_size, 3), spec(2, image_size, image_size, 1)
    for model, inputs in [
        (Generator(16, 4, 3, image_size, precision=precision), (spec(2, 16),)),
        (Discriminator(4, 3, image_size, precision=precision), (images,)),
        (Restorer(3, 4, image_size, True, precision=precision), (images, mask)),
    ]:
        for train in (True, False):
            text, count = lower_forward(model, *inputs, train=train)
            check_precision(
                text, precision, expected_ops=count, minimum=num_upsamplings(image_size) + 1
            )


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("task", ["gan", "restore", "restore_residual"])
def test_train_step_gradients_carry_the_precision(precision, task):
    """The whole step as trained (G or R and D, forward and backward, through `make_modules`): the
    ConvTranspose custom VJP's input convolution, patch extraction and kernel product included
    (the encoder-decoder's; the residual restorer's transposed convolution is a plain product)."""
    config = Config(
        task=task.removesuffix("_residual"),
        restorer="residual" if task == "restore_residual" else "encoder_decoder",
        image_size=32,
        nc=1,
        nz=8,
        ngf=4,
        ndf=4,
        restorer_width=4,
        batch_size=2,
        precision=precision,
    )
    models = make_modules(config)
    state = jax.eval_shape(functools.partial(init_state, config, models))
    batch = {"images": spec(2, 32, 32, 1, dtype=jnp.uint8)}
    if task == "gan":
        batch["latents"] = spec(2, 8)
        step = functools.partial(gan_step, models)
    else:
        step = functools.partial(restore_step, config, models)
    text = jax.jit(step).lower(state, batch).as_text()
    upsamplings = num_upsamplings(
        32
    )  # stride-2 ConvTransposes, each with one patch extraction backward
    # At least: G or R forward + backward (input and kernel) and D three times forward and backward.
    residual = task == "restore_residual"
    check_precision(text, precision, minimum=30, patch_extractions=0 if residual else upsamplings)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_digits_classifier_carries_the_precision(precision):
    images = spec(3, digits.INPUT_SIZE, digits.INPUT_SIZE, 1)
    text, count = lower_forward(digits.DigitsNet(precision), images)
    check_precision(text, precision, expected_ops=count)
    assert count == 4
    variables = jax.eval_shape(digits.DigitsNet().init, jax.random.key(0), images)
    text = digits.compiled_classify.lower(
        variables, images, precision=precision
    ).as_text()  # as the metrics run
    check_precision(text, precision, expected_ops=4)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_inception_carries_the_precision(precision):
    """A small input (75x75, the smallest the graph takes): 94 convolutions and the 1008-class
    product."""
    images = spec(1, 75, 75, 3)
    text, count = lower_forward(inception.FIDInception(precision), images)
    assert count == 95
    check_precision(text, precision, expected_ops=count)
    variables = jax.eval_shape(inception.FIDInception().init, jax.random.key(0), images)
    check_precision(
        inception.compiled_network(precision).lower(variables, images).as_text(),
        precision,
        expected_ops=95,
    )


def test_the_default_is_full_float32_everywhere():
    """The default is "highest" (float32 parity with PyTorch; docs/scaling.md) for the config and
    every network."""
    assert Config().precision == "highest"
    for model in (
        Generator(),
        Discriminator(),
        Restorer(),
        digits.DigitsNet(),
        inception.FIDInception(),
    ):
        assert model.precision == "highest"
    text, _ = lower_forward(Generator(16, 4, 3, 32), spec(2, 16), train=False)
    check_precision(text, "highest", minimum=4)
    assert make_modules(Config(precision="default"))["discriminator"].precision == "default"


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_precision_changes_no_number_on_cpu(dtype):
    """XLA's CPU convolutions and products are full precision whatever the value: outputs, gradients
    and BatchNorm statistics of G, D and R agree bit for bit."""
    if jax.default_backend() != "cpu":
        pytest.skip("on GPUs and TPUs the precisions differ by design")
    compute = jnp.dtype(dtype)
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.uniform(-1, 1, (4, 32, 32, 3)), jnp.float32)
    mask = jnp.asarray(rng.uniform(0, 1, (4, 32, 32, 1)) > 0.5, jnp.float32)
    latents = jnp.asarray(rng.normal(size=(4, 16)), jnp.float32)
    cases = [
        (Generator, dict(nz=16, ngf=8, nc=3, image_size=32), (latents,)),
        (Discriminator, dict(ndf=8, nc=3, image_size=32), (images,)),
        (Restorer, dict(nc=3, width=8, image_size=32, skips=True), (images, mask)),
    ]
    for cls, fields, inputs in cases:
        results = []
        for precision in ("default", "highest"):
            model = cls(**fields, dtype=compute, precision=precision)
            variables = model.init(jax.random.key(1), *inputs, train=False)

            def loss(params, inputs=inputs, model=model, variables=variables):
                out, updates = model.apply(
                    {"params": params, "batch_stats": variables["batch_stats"]},
                    *inputs,
                    train=True,
                    mutable=["batch_stats"],
                )
                return jnp.sum(jnp.square(out.astype(jnp.float32))), (out, updates)

            (value, aux), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
                variables["params"]
            )
            results.append(
                [np.asarray(x, np.float32) for x in jax.tree.leaves((value, aux, grads))]
            )
        for other in results[1:]:
            for a, b in zip(results[0], other, strict=True):
                np.testing.assert_array_equal(a, b)


def test_unknown_precision_is_a_config_error_naming_the_field_and_the_values():
    for make in (
        lambda: Config(precision="tf32").replace(),
        lambda: config_lib.check(Config(precision="fast")),
        lambda: config_lib.apply_overrides(Config(), {"precision": "HIGHEST"}),
    ):
        with pytest.raises(config_lib.ConfigError) as error:
            make()
        message = str(error.value)
        assert "'precision'" in message and all(repr(name) in message for name in PRECISIONS), (
            message
        )
    assert config_lib.apply_overrides(Config(), {"precision": "high"}).precision == "high"


def test_unknown_precision_in_a_network_says_what_is_valid():
    with pytest.raises(ValueError, match="precision must be one of .*'highest'"):
        Generator(16, 4, 3, 32, precision="fast").init(jax.random.key(0), jnp.zeros((1, 16)))
    with pytest.raises(ValueError, match="precision must be one of"):
        digits.DigitsClassifier(precision="tf32")
    with pytest.raises(ValueError, match="precision must be one of"):
        inception.InceptionFeatures(
            "/nonexistent.pth", precision="tf32"
        )  # before the weights are looked for
