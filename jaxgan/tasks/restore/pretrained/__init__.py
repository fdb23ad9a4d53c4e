"""Restorers shipped inside the package: `jaxgan.restore(image, model=NAME)` and
`scripts/restore.py --model NAME` use them with no checkpoint (`--model list` prints them).

Each is one safetensors file, NAME.safetensors: the Flax variables under keys like
`params/stem/kernel`, and in its metadata the architecture record, the training config (its
degradation decides how inputs are prepared: bicubic upsampling, the hole fill) and a description.
They are written from a training workdir by `python scripts/export_restorer.py WORKDIR NAME`
(docs/restoration.md gives each one's training command).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from flax import traverse_util

from jaxgan import config as config_lib
from jaxgan.atomic import atomic_path

FOLDER = Path(__file__).parent
# name -> what it restores, and what it was trained on (the second and third columns of the list)
DESCRIPTIONS = {
    "denoise-colour": (
        "blind Gaussian denoising of colour images, any sigma in 0-50 (of 255)",
        "restore_denoise64: 64x64 crops of the 7 built-in colour photos' training regions",
    ),
    "denoise-gray": (
        "blind Gaussian denoising of grayscale images and single bands, sigma 0-50 (of 255)",
        "restore_gray64: 64x64 crops of the 17 built-in photos' training regions, as luma",
    ),
    "sr4x": (
        "4x super-resolution (of bicubic-downsampled colour images); use --scale 4",
        "restore_sr4x64: 64x64 crops of the built-in colour photos' training regions",
    ),
    "sr2x": (
        "2x super-resolution (of bicubic-downsampled colour images); use --scale 2",
        "restore_sr2x64: 64x64 crops of the built-in colour photos' training regions",
    ),
    "inpaint": (
        "inpainting of colour images (--mask: white = missing): centre squares, strokes, boxes",
        "restore_inpaint64: 64x64 crops of the built-in colour photos' training regions",
    ),
}


class UnknownModelError(ValueError):
    """A `--model` name that is not shipped: the message lists the names."""


def path_of(name: str) -> Path:
    return FOLDER / f"{name}.safetensors"


def names() -> list[str]:
    """The shipped restorers present in this installation, in DESCRIPTIONS' order."""
    return [name for name in DESCRIPTIONS if path_of(name).is_file()]


def listing() -> str:
    """One line per shipped restorer: the name, what it restores, what it was trained on."""
    return "\n".join(
        f"{name}\t{DESCRIPTIONS[name][0]}\t{DESCRIPTIONS[name][1]}" for name in names()
    )


def load(name: str) -> tuple[dict[str, Any], Any, config_lib.Config]:
    """(arch, variables, training config) of a shipped restorer."""
    if name not in names():
        raise UnknownModelError(
            f"no shipped restorer {name!r}; the shipped ones are: {', '.join(names()) or 'none'} "
            "(scripts/restore.py --model list describes them)"
        )
    from safetensors import safe_open

    with safe_open(str(path_of(name)), framework="numpy") as file:
        metadata = file.metadata()
        flat = {tuple(key.split("/")): file.get_tensor(key) for key in file.keys()}
    config = config_lib.from_dict(json.loads(metadata["config"]), source=str(path_of(name)))
    return json.loads(metadata["arch"]), traverse_util.unflatten_dict(flat), config


def export(workdir: str | os.PathLike, name: str) -> Path:
    """Write NAME.safetensors from a restorer's training workdir (its EMA when kept), atomically."""
    from safetensors.numpy import save_file

    from jaxgan.loading import load_variables

    if name not in DESCRIPTIONS:
        raise UnknownModelError(
            f"{name!r} is not a shipped name; expected one of {list(DESCRIPTIONS)}"
        )
    arch, variables, config = load_variables(workdir, "restorer")
    flat = {
        "/".join(path): np.ascontiguousarray(value)
        for path, value in traverse_util.flatten_dict(variables).items()
    }
    metadata = {
        "arch": json.dumps(arch),
        "config": json.dumps(config.to_dict()),
        "description": DESCRIPTIONS[name][0],
    }
    with atomic_path(path_of(name)) as temporary:
        save_file(flat, str(temporary), metadata=metadata)
    return path_of(name)
