"""Packaging: every third-party import is a declared dependency, and a non-editable install works on
its own: the console scripts answer --help and each makes one tiny real call with the packaged
configs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from tests.helpers import ROOT

FIRST_PARTY = {"jaxgan", "torch_ref", "scripts", "configs", "tests", "parity_tests"}
SCRIPTS = (
    "jaxgan-train",
    "jaxgan-sample",
    "jaxgan-convert",
    "jaxgan-evaluate",
    "jaxgan-restore",
    "jaxgan-prepare",
)


def imported_modules(folders: tuple[str, ...]) -> dict[str, str]:
    """Top-level modules imported anywhere under `folders` -> one file that imports it."""
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def declared(extra: str | None = None) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    return {
        re.split(r"[<>=!\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs
    }


def test_every_third_party_import_is_a_declared_dependency():
    distributions = metadata.packages_distributions()
    required, optional = declared(), declared("torch") | declared("classical")
    missing = []
    for folders, allowed in (
        (("jaxgan", "configs", "scripts"), required | optional),
        (("torch_ref",), required | declared("torch")),
    ):
        for module, where in imported_modules(folders).items():
            if module in FIRST_PARTY or module in sys.stdlib_module_names:
                continue
            names = {name.lower().replace("_", "-") for name in distributions.get(module, [module])}
            if not names & allowed:
                missing.append(f"{module} (imported by {where}, distribution {sorted(names)})")
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """`pip install --no-deps --target DIR .`: the package as a wheel installs it (configs, metrics
    weights, console scripts), beside this environment's dependencies but not the checkout."""
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return target


def run_script(installed: Path, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, str(installed / "bin" / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
    )


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import jaxgan, jaxgan.configs, jaxgan.metrics.digits as d; "
            "print(jaxgan.__file__); print(d.WEIGHTS_PATH.is_file())",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    location, weights = result.stdout.split()
    assert Path(location).is_relative_to(installed) and weights == "True"


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_console_script_answers_help(installed, tmp_path, name):
    result = run_script(installed, name, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("usage:")


def test_one_tiny_real_call_of_each_console_script(installed, tmp_path):
    tiny = [
        "--config.nc=1",
        "--config.nz=8",
        "--config.ngf=8",
        "--config.ndf=8",
        "--config.batch_size=8",
        "--config.num_steps=2",
        "--config.log_every=1",
        "--config.sample_every=2",
        "--config.eval_every=0",
        "--config.num_samples=4",
        "--config.loader_threads=0",
    ]
    calls = {
        "jaxgan-train": ["--config", "dcgan32", "--workdir", "run", *tiny],
        "jaxgan-sample": ["--checkpoint", "run", "--out", "grid.png", "--num", "4"],
        "jaxgan-convert": ["jax2torch", "--model", "generator", "run", "generator.safetensors"],
        "jaxgan-evaluate": [
            "gan",
            "--checkpoint",
            "run",
            "--metric",
            "modes",
            "--num",
            "20",
            "--batch-size",
            "10",
        ],
        "jaxgan-prepare": ["digits", "prepared", "--image-size", "32", "--nc", "1", "--quiet"],
    }
    for name, args in calls.items():
        result = run_script(installed, name, *args, cwd=tmp_path)
        assert result.returncode == 0, (name, result.stderr[-3000:])
        assert name != "jaxgan-evaluate" or "modes" in result.stdout
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "generator.safetensors").is_file()
    assert (tmp_path / "prepared" / "prepared.json").is_file()
    import numpy as np
    from PIL import Image

    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(tmp_path / "photo.png")
    Image.fromarray(np.pad(np.full((8, 8), 255, np.uint8), 12)).save(tmp_path / "mask.png")
    result = run_script(
        installed,
        "jaxgan-restore",
        "--method",
        "gan-prior",
        "--checkpoint",
        "run",
        "--input",
        "photo.png",
        "--mask",
        "mask.png",
        "--out",
        "filled.png",
        "--steps",
        "2",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "filled.png").is_file()
    # the shipped restorers come with the wheel: listed, and used with no checkpoint
    result = run_script(installed, "jaxgan-restore", "--model", "list", cwd=tmp_path)
    from jaxgan.tasks.restore import pretrained

    listed = [line.split("\t")[0] for line in result.stdout.strip().splitlines()]
    assert result.returncode == 0 and listed == list(pretrained.DESCRIPTIONS), result.stdout
    result = run_script(
        installed,
        "jaxgan-restore",
        "--model",
        "denoise-gray",
        "--input",
        "photo.png",
        "--out",
        "denoised.png",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "denoised.png").is_file()
