"""Checkpoint conversion: exact round trips both ways, the seed's own classes, and real-world
files."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import torch
from flax import traverse_util
from torch import nn

from jaxgan import convert, model_folder, torch_files
from parity_tests.helpers import make_torch_model, precision, role, torch_forward
from scripts import convert as convert_cli
from scripts import sample as sample_cli


class SeedGenerator(nn.Module):
    """The seed document's section 4.1, verbatim."""

    def __init__(self):
        super(SeedGenerator, self).__init__()  # noqa: UP008
        self.main = nn.Sequential(
            nn.ConvTranspose2d(100, 512, 4, 1, 0, bias=False),
            nn.BatchNorm2d(512),
            nn.ReLU(True),
            nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False),
            nn.BatchNorm2d(256),
            nn.ReLU(True),
            nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(True),
            nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(True),
            nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class SeedDiscriminator(nn.Module):
    """The seed document's section 4.2, verbatim."""

    def __init__(self):
        super(SeedDiscriminator, self).__init__()  # noqa: UP008
        self.main = nn.Sequential(
            nn.Conv2d(3, 64, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, 128, 4, 2, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(128, 256, 4, 2, 1, bias=False),
            nn.BatchNorm2d(256),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(256, 512, 4, 2, 1, bias=False),
            nn.BatchNorm2d(512),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(512, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input)


def assert_same_state_dict(got: dict, expected: dict, ordered: bool = True) -> None:
    """Same keys (in the same order, except for safetensors, which stores keys sorted), dtypes,
    values."""
    assert list(got) == list(expected) if ordered else sorted(got) == sorted(expected)
    for key, want in expected.items():
        value, want = torch.as_tensor(got[key]), torch.as_tensor(want)
        assert value.shape == want.shape and value.dtype == want.dtype, key
        assert torch.equal(value, want), key


def run_cli(main, *args: str) -> int:
    return main([str(a) for a in args])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize(
    "name,skips",
    [
        ("generator", False),
        ("discriminator", False),
        ("restorer", False),
        ("restorer", True),
        ("residual", False),
        ("residual_bn", False),
        ("residual_u1", False),
        ("residual_u4", False),
        ("conditional_generator", False),
        ("conditional_batchnorm_generator", False),
        ("conditional_both_generator", False),
        ("projection_discriminator", False),
    ],
)
def test_torch_to_jax_to_torch_is_exact(tmp_path, name, skips, suffix, dtype):
    module = make_torch_model(name, skips=skips, dtype=dtype)
    original = module.state_dict()
    source = tmp_path / f"model{suffix}"
    torch_files.save_state_dict({k: v.numpy() for k, v in original.items()}, source)
    model = role(name)
    assert run_cli(convert_cli.main, "torch2jax", "--model", model, source, tmp_path / "jax") == 0
    assert (
        run_cli(
            convert_cli.main,
            "jax2torch",
            "--model",
            model,
            tmp_path / "jax",
            tmp_path / f"back{suffix}",
        )
        == 0
    )
    back, _ = torch_files.load_state_dict(tmp_path / f"back{suffix}")
    assert_same_state_dict(back, original, ordered=suffix == ".pth")


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize(
    "name",
    [
        "generator",
        "discriminator",
        "restorer",
        "residual",
        "projection_discriminator",
        "conditional_batchnorm_generator",
    ],
)
def test_jax_to_torch_to_jax_is_exact(tmp_path, name, suffix, dtype):
    arch = {
        "projection_discriminator": dict(
            model="discriminator", ndf=8, nc=1, image_size=32, num_classes=10
        ),
        "generator": dict(model="generator", nz=16, ngf=8, nc=3, image_size=32),
        "conditional_batchnorm_generator": dict(
            model="generator", nz=16, ngf=8, nc=1, image_size=32, num_classes=10
        )
        | {"class_conditioning": "batchnorm"},
        "discriminator": dict(model="discriminator", ndf=8, nc=1, image_size=64),
        "restorer": dict(model="restorer", nc=3, width=8, image_size=32, skips=True),
        "residual": dict(
            model="residual_restorer",
            nc=1,
            width=8,
            blocks=3,
            unshuffle=2,
            batchnorm=True,
            image_size=64,
        ),
    }[name]
    shapes = convert.variable_shapes(arch)
    rng = np.random.default_rng(0)
    flat = {
        path: (
            np.full(shape, 3, np.int32)
            if path[-1] == "num_batches_tracked"
            else rng.standard_normal(shape).astype(dtype)
        )
        for path, shape in shapes.items()
    }
    variables = traverse_util.unflatten_dict(flat)
    model_folder.save_model(tmp_path / "jax", arch, variables)
    assert (
        run_cli(
            convert_cli.main,
            "jax2torch",
            "--model",
            role(name),
            tmp_path / "jax",
            tmp_path / f"t{suffix}",
        )
        == 0
    )
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            role(name),
            tmp_path / f"t{suffix}",
            tmp_path / "back",
        )
        == 0
    )
    back_arch, back = model_folder.load_model(tmp_path / "back")
    assert back_arch == arch
    back_flat = traverse_util.flatten_dict(back)
    assert set(back_flat) == set(flat)
    for path, value in flat.items():
        assert np.asarray(back_flat[path]).dtype == value.dtype, path
        np.testing.assert_array_equal(np.asarray(back_flat[path]), value, err_msg=str(path))


def test_seed_classes_load_strictly_convert_and_run(tmp_path):
    torch.manual_seed(0)
    for seed_class, ours, name in [
        (SeedGenerator, make_torch_model("generator", 64, 3, 64, nz=100), "generator"),
        (SeedDiscriminator, make_torch_model("discriminator", 64, 3, 64), "discriminator"),
    ]:
        seed_model = seed_class()
        ours.load_state_dict(seed_model.state_dict(), strict=True)  # torch_ref is the seed's layout
        torch.save(seed_model.state_dict(), tmp_path / f"{name}.pth")
        state_dict, _ = torch_files.load_state_dict(tmp_path / f"{name}.pth")
        arch = convert.infer_arch(name, state_dict)
        assert arch == (
            {"model": "generator", "nz": 100, "ngf": 64, "nc": 3, "image_size": 64}
            if name == "generator"
            else {"model": "discriminator", "ndf": 64, "nc": 3, "image_size": 64}
        )
        variables = convert.torch_to_flax(arch, state_dict)
        inputs = np.random.default_rng(1).standard_normal(
            (2, 100, 1, 1) if name == "generator" else (2, 3, 64, 64)
        )
        inputs = inputs.astype(np.float32)
        expected = torch_forward(seed_model, [inputs], train=False)
        jax_input = inputs.reshape(2, 100) if name == "generator" else inputs.transpose(0, 2, 3, 1)
        got = np.asarray(convert.build_model(arch).apply(variables, jax_input, train=False))
        got = 1 / (1 + np.exp(-got)) if name == "discriminator" else got
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    "nc,data_parallel", [(3, False), (1, True)], ids=["seed", "mnist-dataparallel"]
)
def test_user_flow_convert_sample_and_back(tmp_path, nc, data_parallel, capsys):
    """Done-when of the core issue: save, convert with the CLI, sample on given latents with
    scripts/sample.py (eval mode) within 1e-5 of PyTorch, convert back to an identical state
    dict."""
    module = make_torch_model("generator", 64, nc, 64, nz=100)
    saved = nn.DataParallel(module) if data_parallel else module
    torch.save(saved.state_dict(), tmp_path / "netG.pth")
    latents = np.random.default_rng(2).standard_normal((6, 100, 1, 1)).astype(np.float32)
    np.save(tmp_path / "z.npy", latents)
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            "generator",
            tmp_path / "netG.pth",
            tmp_path / "g",
        )
        == 0
    )
    if data_parallel:
        assert "module." in capsys.readouterr().out  # it says what it did
    assert (
        run_cli(
            sample_cli.main,
            "--checkpoint",
            tmp_path / "g",
            "--latents",
            tmp_path / "z.npy",
            "--out",
            tmp_path / "x.npy",
        )
        == 0
    )
    np.testing.assert_allclose(
        np.load(tmp_path / "x.npy"),
        torch_forward(module, [latents], train=False),
        rtol=0,
        atol=1e-5,
    )
    assert (
        run_cli(
            convert_cli.main,
            "jax2torch",
            "--model",
            "generator",
            tmp_path / "g",
            tmp_path / "back.pth",
        )
        == 0
    )
    assert_same_state_dict(
        torch.load(tmp_path / "back.pth", weights_only=True), module.state_dict()
    )


def test_checkpoint_dict_needs_key_and_lists_keys(tmp_path, capsys):
    generator = make_torch_model("generator")
    discriminator = make_torch_model("discriminator")
    torch.save(
        {"netG": generator.state_dict(), "netD": discriminator.state_dict(), "epoch": 3},
        tmp_path / "ckpt.pth",
    )
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            "generator",
            tmp_path / "ckpt.pth",
            tmp_path / "g",
        )
        == 1
    )
    error = capsys.readouterr().err
    assert "--key" in error and "'netG'" in error and "'netD'" in error
    assert not (tmp_path / "g").exists()
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            "discriminator",
            "--key",
            "netD",
            tmp_path / "ckpt.pth",
            tmp_path / "d",
        )
        == 0
    )
    _, variables = model_folder.load_model(tmp_path / "d")
    np.testing.assert_array_equal(
        variables["params"]["conv_0"]["kernel"],
        discriminator.state_dict()["main.0.weight"].numpy().transpose(2, 3, 1, 0),
    )


def test_pickled_whole_model_is_refused_with_advice(tmp_path, capsys):
    torch.save(make_torch_model("generator"), tmp_path / "whole.pth")
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            "generator",
            tmp_path / "whole.pth",
            tmp_path / "g",
        )
        == 1
    )
    assert "state_dict()" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_shape_mismatch_names_key_and_both_shapes(tmp_path, capsys):
    state_dict = make_torch_model("generator").state_dict()
    state_dict["main.3.weight"] = torch.zeros(32, 17, 4, 4)
    torch.save(state_dict, tmp_path / "bad.pth")
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            "generator",
            tmp_path / "bad.pth",
            tmp_path / "g",
        )
        == 1
    )
    error = capsys.readouterr().err
    assert "main.3.weight" in error and "(32, 16, 4, 4)" in error and "(32, 17, 4, 4)" in error
    assert not (tmp_path / "g").exists()


def test_unused_and_missing_keys_are_errors():
    state_dict = {k: v.numpy() for k, v in make_torch_model("generator").state_dict().items()}
    arch = convert.infer_arch("generator", state_dict)
    with pytest.raises(convert.ConversionError, match="unexpected.*main.99.bias"):
        convert.torch_to_flax(arch, {**state_dict, "main.99.bias": np.zeros(3)})
    del state_dict["main.4.running_var"]
    with pytest.raises(convert.ConversionError, match="missing.*main.4.running_var"):
        convert.torch_to_flax(arch, state_dict)


def test_existing_output_needs_force(tmp_path, capsys):
    torch.save(make_torch_model("generator").state_dict(), tmp_path / "g.pth")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            "generator",
            tmp_path / "g.pth",
            tmp_path / "out",
        )
        == 1
    )
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"
    assert (
        run_cli(
            convert_cli.main,
            "torch2jax",
            "--model",
            "generator",
            "--force",
            tmp_path / "g.pth",
            tmp_path / "out",
        )
        == 0
    )
    assert model_folder.load_model(tmp_path / "out")[0]["model"] == "generator"


def test_wrong_model_kind_is_a_clear_error():
    state_dict = {k: v.numpy() for k, v in make_torch_model("generator").state_dict().items()}
    with pytest.raises(convert.ConversionError, match="keys of a generator: use --model generator"):
        convert.torch_to_flax(convert.infer_arch("discriminator", state_dict), state_dict)


def test_safetensors_needs_no_torch_and_pth_without_torch_names_the_extra(tmp_path):
    state_dict = {k: v.numpy() for k, v in make_torch_model("generator").state_dict().items()}
    torch_files.save_state_dict(state_dict, tmp_path / "g.safetensors")
    torch.save(make_torch_model("generator").state_dict(), tmp_path / "g.pth")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # as if torch were not installed
        from scripts import convert
        assert convert.main(["torch2jax", "--model", "generator", r"{tmp_path / "g.safetensors"}",
                             r"{tmp_path / "jax"}"]) == 0
        assert convert.main(["torch2jax", "--model", "generator", r"{tmp_path / "g.pth"}", """
        f"""r"{tmp_path / "x"}"]) == 1
    """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'jaxgan[torch]'" in result.stderr
    with precision("float32"):
        arch, variables = model_folder.load_model(tmp_path / "jax")
    assert convert.flax_to_torch(arch, jax.device_get(variables)).keys() == state_dict.keys()
