"""pytorch-fid's Inception weights file -> Flax variables: a name table with shape checks, every key
used once.

The file is pytorch-fid's release asset (a state dict of torchvision's Inception-v3 with the FID
blocks). It is read with `weights_only=True` (or from a `.safetensors` copy) and never downloaded:
a missing file is an error that says where to get it and where to put it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import traverse_util

from jaxgan.convert import LAYOUTS, ConversionError, Entry, check_keys, to_numpy
from jaxgan.metrics.inception import variable_shapes

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = (
    f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
)
ENVIRONMENT_VARIABLE = "JAXGAN_INCEPTION_WEIGHTS"
SUGGESTED_PLACE = Path("~/.cache/jaxgan") / WEIGHTS_FILE

# The fully connected layer is (out, in) in PyTorch and (in, out) in Flax. `dropped` keys are
# checked and not kept: BatchNorm's training counter, and the last bias, which Inception Score
# leaves out.
INCEPTION_LAYOUTS = {**LAYOUTS, "dense": ((1, 0), (1, 0)), "dropped": (None, None)}
BATCHNORM_NAMES = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


class InceptionWeightsError(FileNotFoundError):
    """The FID Inception weights are not where they were looked for; says where to get them."""


def resolve_weights_path(path: str | os.PathLike | None = None) -> Path:
    """The weights file: `path`, else $JAXGAN_INCEPTION_WEIGHTS; a clear error if neither names a
    file."""
    given = path if path is not None else os.environ.get(ENVIRONMENT_VARIABLE)
    how = (
        "--inception-weights PATH (Python: InceptionFeatures(PATH)) or the environment variable "
        f"{ENVIRONMENT_VARIABLE}=PATH"
    )
    fetch = (
        f"jaxgan never downloads at run time. Download pytorch-fid's weights once, e.g. "
        f"`mkdir -p {SUGGESTED_PLACE.parent} && curl -L -o {SUGGESTED_PLACE} {WEIGHTS_URL}`, "
        f"and give {how}"
    )
    if not given:
        raise InceptionWeightsError(
            f"the FID Inception weights are needed and none were given. {fetch}"
        )
    resolved = Path(given).expanduser()
    if not resolved.is_file():
        source = "given" if path is not None else f"from ${ENVIRONMENT_VARIABLE}"
        raise InceptionWeightsError(
            f"FID Inception weights file {resolved} ({source}) does not exist. {fetch}"
        )
    return resolved


def table() -> list[Entry]:
    """Every key of pytorch-fid's state dict and the Flax variable it becomes, read off the Flax
    model."""
    entries = []
    for path in variable_shapes():
        collection, *modules, leaf = path
        prefix = ".".join(modules)
        if modules == ["fc"]:
            entries.append(Entry("fc.weight", path, "dense"))
        elif leaf == "kernel":
            entries.append(Entry(f"{prefix}.conv.weight", path, "conv"))
        else:
            entries.append(Entry(f"{prefix}.bn.{BATCHNORM_NAMES[leaf]}", path, "vector"))
            if leaf == "var":
                entries.append(Entry(f"{prefix}.bn.num_batches_tracked", (), "dropped"))
    entries.append(Entry("fc.bias", (), "dropped"))
    return entries


def _dropped_shape(key: str) -> tuple[int, ...]:
    return (1008,) if key == "fc.bias" else ()


def torch_to_flax(state_dict: Mapping[str, Any], source: str = "state dict") -> dict:
    """pytorch-fid's state dict (numpy arrays or tensors) -> Flax variables
    {'params', 'batch_stats'}.

    `num_batches_tracked` may be absent (files from PyTorch < 0.4.1); any other missing, extra or
    misshapen key is an error that names it and both shapes.
    """
    entries = table()
    expected = variable_shapes()
    optional = {e.torch_key for e in entries if e.torch_key.endswith("num_batches_tracked")}
    try:
        check_keys({e.torch_key for e in entries}, set(state_dict) | optional, f"{source}")
    except ConversionError as error:
        raise ConversionError(
            f"{error} (expected pytorch-fid's FID Inception, {WEIGHTS_FILE})"
        ) from None
    flat = {}
    for entry in entries:
        if entry.torch_key not in state_dict:
            continue
        value = to_numpy(state_dict[entry.torch_key])
        forward = INCEPTION_LAYOUTS[entry.layout][0]
        if entry.layout == "dropped":
            want_torch = _dropped_shape(entry.torch_key)
        else:
            want = expected[entry.flax_path]
            backward = INCEPTION_LAYOUTS[entry.layout][1]
            want_torch = tuple(want[a] for a in backward) if backward else want
        if tuple(value.shape) != want_torch:
            raise ConversionError(
                f"{source}: key {entry.torch_key!r}: expected shape {want_torch} for pytorch-fid's "
                f"FID Inception, found {tuple(value.shape)}"
            )
        if entry.layout != "dropped":
            value = value.transpose(forward) if forward else value
            flat[entry.flax_path] = np.asarray(value, np.float32)
    return traverse_util.unflatten_dict(flat)


def flax_to_torch(
    variables: Mapping[str, Any], fc_bias: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Flax variables -> pytorch-fid's state dict (`fc.bias` zero unless given; no training
    counters)."""
    flat = traverse_util.flatten_dict(dict(variables))
    state_dict = {}
    for entry in table():
        if entry.layout == "dropped":
            if entry.torch_key == "fc.bias":
                state_dict["fc.bias"] = (
                    np.zeros(1008, np.float32) if fc_bias is None else np.asarray(fc_bias)
                )
            continue
        value = np.asarray(flat[entry.flax_path])
        backward = INCEPTION_LAYOUTS[entry.layout][1]
        state_dict[entry.torch_key] = np.require(
            value.transpose(backward) if backward else value, requirements="C"
        )
    return state_dict


def load_inception_variables(path: str | os.PathLike) -> dict:
    """Flax variables from pytorch-fid's `.pth` (read with weights_only=True) or a `.safetensors`
    copy."""
    from jaxgan.torch_files import load_state_dict

    state_dict, _ = load_state_dict(path)
    return torch_to_flax(state_dict, source=str(path))
