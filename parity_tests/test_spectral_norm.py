"""A spectrally normalised D (with and without its BatchNorm layers), and G, convert both ways in
both of PyTorch's formats, read off the keys, and compute what PyTorch computes: eval mode with the
stored vectors, train mode with one power iteration per call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jaxgan import convert, model_folder, torch_files
from parity_tests.helpers import make_inputs, state_dict_numpy, to_jax_input
from parity_tests.test_conversion import assert_same_state_dict, run_cli
from scripts import convert as convert_cli
from torch_ref import models as torch_models

FORMATS = ("parametrizations", "legacy")


def spectral_discriminator(format: str, batchnorm: bool, seed: int = 0) -> torch.nn.Module:
    """torch_ref's D, DCGAN-initialised, then spectrally normalised, then three train-mode calls so
    that u and v have moved from their initial values (float64)."""
    torch.manual_seed(seed)
    module = torch_models.Discriminator(8, 3, 32, batchnorm=batchnorm)
    module.apply(torch_models.weights_init)
    torch_models.spectral_norm(module, format).double().train()
    with torch.no_grad():
        for _ in range(3):
            module(torch.randn(4, 3, 32, 32, dtype=torch.float64))
    return module


def convert_d(command: str, source, destination, *flags: str) -> int:
    """scripts/convert.py `command` (torch2jax or jax2torch) of a discriminator."""
    return run_cli(
        convert_cli.main, command, "--model", "discriminator", source, destination, *flags
    )


def torch_logits(module: torch.nn.Module, images: np.ndarray, train: bool) -> np.ndarray:
    module.train(train)
    with torch.no_grad():
        return module.main[:-1](torch.from_numpy(images)).reshape(-1).numpy()


@pytest.mark.parametrize("batchnorm", [True, False], ids=["batchnorm", "no_batchnorm"])
@pytest.mark.parametrize("format", FORMATS)
def test_forward_in_both_modes_matches_pytorch(format, batchnorm):
    import jax

    with jax.enable_x64(True):
        module = spectral_discriminator(format, batchnorm)
        state_dict = state_dict_numpy(module)
        arch = convert.infer_arch("discriminator", state_dict)
        assert arch["spectral_norm"] == format and arch.get("batchnorm", True) == batchnorm
        variables = convert.torch_to_flax(arch, state_dict)
        model = convert.build_model(arch, np.float64)
        (images,) = make_inputs("discriminator", 4, dtype="float64")
        eval_logits = np.asarray(model.apply(variables, to_jax_input(images), train=False))
        np.testing.assert_allclose(eval_logits, torch_logits(module, images, False), rtol=1e-12)
        logits, updates = model.apply(
            variables, to_jax_input(images), train=True, mutable=["batch_stats", "spectral"]
        )
        expected = torch_logits(module, images, True)  # PyTorch updates u and v in place
        after = convert.torch_to_flax(arch, state_dict_numpy(module))
    if format == "legacy":  # the old API iterates v first, then u: the same fixed point, not the
        return  # same step; jaxgan trains as the parametrizations API does
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-10, atol=1e-12)
    for layer, vectors in after["spectral"].items():
        for name, value in vectors.items():
            np.testing.assert_allclose(updates["spectral"][layer][name], value, atol=1e-12)


@pytest.mark.parametrize("format", FORMATS)
def test_torch_to_jax_to_torch_is_exact_in_each_format(tmp_path, format):
    module = spectral_discriminator(format, batchnorm=True).float()
    original = module.state_dict()
    source = tmp_path / "d.pth"
    torch_files.save_state_dict({k: v.numpy() for k, v in original.items()}, source)
    assert convert_d("torch2jax", source, tmp_path / "j") == 0
    assert model_folder.load_model(tmp_path / "j")[0]["spectral_norm"] == format
    back = tmp_path / "back.pth"
    assert convert_d("jax2torch", tmp_path / "j", back) == 0
    assert_same_state_dict(torch_files.load_state_dict(back)[0], original)


def test_jax2torch_writes_the_format_asked_for(tmp_path):
    """From the parametrizations format to the legacy one: the file loads strictly into PyTorch's
    old spectral_norm and gives the same eval-mode outputs."""
    module = spectral_discriminator("parametrizations", batchnorm=True).float()
    source = tmp_path / "d.pth"
    torch_files.save_state_dict(state_dict_numpy(module), source)
    assert convert_d("torch2jax", source, tmp_path / "j") == 0
    legacy = tmp_path / "legacy.pth"
    assert convert_d("jax2torch", tmp_path / "j", legacy, "--spectral-norm-format", "legacy") == 0
    old = torch_models.spectral_norm(torch_models.Discriminator(8, 3, 32), "legacy")
    old.load_state_dict(torch.load(legacy, weights_only=True), strict=True)
    (images,) = make_inputs("discriminator", 4)
    np.testing.assert_allclose(
        torch_logits(old, images, False), torch_logits(module, images, False), rtol=1e-5, atol=1e-6
    )


def test_spectral_norm_format_for_a_plain_model_is_an_error(tmp_path, capsys):
    module = torch_models.Discriminator(8, 3, 32)
    source = tmp_path / "d.pth"
    torch_files.save_state_dict(state_dict_numpy(module), source)
    assert convert_d("torch2jax", source, tmp_path / "j") == 0
    output = tmp_path / "o.pth"
    assert convert_d("jax2torch", tmp_path / "j", output, "--spectral-norm-format", "legacy") == 1
    assert "has no spectral normalisation" in capsys.readouterr().err


def spectral_generator(format: str, seed: int = 0) -> torch.nn.Module:
    """torch_ref's G, spectrally normalised (PyTorch picks dim 1 of a ConvTranspose2d weight, its
    output channels), after three train-mode calls (float64)."""
    torch.manual_seed(seed)
    module = torch_models.Generator(nz=16, ngf=8, nc=3, image_size=32)
    module.apply(torch_models.weights_init)
    torch_models.spectral_norm(module, format).double().train()
    with torch.no_grad():
        for _ in range(3):
            module(torch.randn(4, 16, 1, 1, dtype=torch.float64))
    return module


@pytest.mark.parametrize("format", FORMATS)
def test_spectrally_normalised_generator_matches_pytorch_and_converts_exactly(tmp_path, format):
    import jax

    module = spectral_generator(format)
    with jax.enable_x64(True):
        state_dict = state_dict_numpy(module)
        arch = convert.infer_arch("generator", state_dict)
        assert arch["spectral_norm"] == format and arch["nz"] == 16
        variables = convert.torch_to_flax(arch, state_dict)
        model = convert.build_model(arch, np.float64)
        (latents,) = make_inputs("generator", 4, nz=16, dtype="float64")
        module.eval()
        with torch.no_grad():
            expected = module(torch.from_numpy(latents)).numpy().transpose(0, 2, 3, 1)
        got = np.asarray(model.apply(variables, to_jax_input(latents), train=False))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        if format == "parametrizations":  # one power iteration per train-mode call, as PyTorch
            out, updates = model.apply(
                variables, to_jax_input(latents), train=True, mutable=["batch_stats", "spectral"]
            )
            module.train()
            with torch.no_grad():
                expected = module(torch.from_numpy(latents)).numpy().transpose(0, 2, 3, 1)
            np.testing.assert_allclose(np.asarray(out), expected, rtol=0, atol=1e-10)
            after = convert.torch_to_flax(arch, state_dict_numpy(module))["spectral"]
            for layer, vectors in after.items():
                for name, value in vectors.items():
                    np.testing.assert_allclose(updates["spectral"][layer][name], value, atol=1e-12)
    source = tmp_path / "g.pth"
    original = module.float().state_dict()
    torch_files.save_state_dict({k: v.numpy() for k, v in original.items()}, source)
    assert (
        run_cli(convert_cli.main, "torch2jax", "--model", "generator", source, tmp_path / "j") == 0
    )
    back = tmp_path / "back.pth"
    assert run_cli(convert_cli.main, "jax2torch", "--model", "generator", tmp_path / "j", back) == 0
    assert_same_state_dict(torch_files.load_state_dict(back)[0], original)
