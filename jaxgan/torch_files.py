"""Reading and writing PyTorch weight files safely: `.pth`/`.pt` with `weights_only=True`, or
safetensors.

Reading `.safetensors` needs no torch. Real-world layouts are handled: `module.` prefixes from
`nn.DataParallel`/DDP, and checkpoint dicts holding state dicts under keys (`--key NAME`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxgan.atomic import atomic_path, check_writable

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class WeightsFileError(ValueError):
    """A weights file that cannot be read as a state dict; the message says why and what to do."""


def require_torch(path: str | os.PathLike):
    try:
        import torch
    except ImportError as error:
        raise WeightsFileError(
            f"{path}: reading or writing PyTorch files needs torch; install the extra: "
            "pip install 'jaxgan[torch]' "
            "(or convert the file to .safetensors, which needs no torch)"
        ) from error
    return torch


def tensor_to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor -> numpy array of the same dtype (bfloat16 via ml_dtypes), bit for bit."""
    import torch

    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def numpy_to_tensor(array: np.ndarray):
    import torch

    if array.dtype.name == "bfloat16":
        return torch.from_numpy(np.require(array, requirements="C").view(np.int16)).view(
            torch.bfloat16
        )
    return torch.from_numpy(np.require(array, requirements="C"))


def _is_state_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(hasattr(v, "shape") and hasattr(v, "dtype") for v in value.values())
    )


def read_file(path: str | os.PathLike) -> Any:
    """The raw object in a `.safetensors` (dict of numpy arrays) or torch file (weights only, no
    code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        try:
            return load_file(str(path))
        except Exception as error:  # safetensors raises its own error types
            raise WeightsFileError(f"{path}: not a readable safetensors file ({error})") from error
    torch = require_torch(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise WeightsFileError(
            f"{path}: holds pickled Python objects (a whole model?), which jaxgan never unpickles. "
            "Save a state dict instead: torch.save(model.state_dict(), 'weights.pth')"
        ) from error
    except Exception as error:
        raise WeightsFileError(
            f"{path}: not a readable PyTorch file ({type(error).__name__}: {error})"
        ) from error


def load_state_dict(
    path: str | os.PathLike, key: str | None = None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """A flat {name: numpy array} state dict from a file, and notes on what was done to it.

    `key` selects a state dict inside a checkpoint dict (dots go deeper: `models.netG`).
    """
    obj, notes = read_file(path), []
    if key is not None:
        for part in key.split("."):
            if not isinstance(obj, Mapping) or part not in obj:
                found = list(obj) if isinstance(obj, Mapping) else type(obj).__name__
                raise WeightsFileError(f"{path}: no key {key!r} (found: {found})")
            obj = obj[part]
        notes.append(f"took the state dict under key {key!r}")
    if not _is_state_dict(obj):
        if isinstance(obj, Mapping):
            candidates = [k for k, v in obj.items() if _is_state_dict(v)]
            raise WeightsFileError(
                f"{path}: a checkpoint dict, not a state dict; choose one with --key (key=...). "
                f"Keys holding state dicts: {candidates}; all keys: {list(obj)}"
            )
        raise WeightsFileError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    state_dict = {
        k: tensor_to_numpy(v) if hasattr(v, "detach") else np.asarray(v) for k, v in obj.items()
    }
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k[len("module.") :]: v for k, v in state_dict.items()}
        notes.append(
            "stripped the 'module.' prefix of an nn.DataParallel / DistributedDataParallel "
            "state dict"
        )
    return state_dict, notes


def save_state_dict(
    state_dict: Mapping[str, np.ndarray], path: str | os.PathLike, force: bool = False
) -> Path:
    """Write `.safetensors` (no torch needed) or `.pth` atomically; never overwrites without
    `force`."""
    path = check_writable(path, force)
    arrays = {k: np.require(v, requirements="C") for k, v in state_dict.items()}
    with atomic_path(path) as temporary:
        if path.suffix == ".safetensors":
            from safetensors.numpy import save_file

            save_file(arrays, str(temporary))
        elif path.suffix in TORCH_SUFFIXES:
            torch = require_torch(path)
            torch.save({k: numpy_to_tensor(v) for k, v in arrays.items()}, temporary)
        else:
            raise WeightsFileError(f"{path}: unknown weights format; use .safetensors or .pth")
    return path
