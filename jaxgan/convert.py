"""PyTorch <-> Flax conversion of the three models: a table of names and layouts with shape checks.

Each model has one table of `Entry(torch_key, flax_path, layout)`. Conversion walks the table,
checks every shape against the Flax model's own shapes, and fails if any key on either side is left
unused. Transforms are pure transposes, so both directions are exact (bit for bit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from jaxgan.models import Discriminator, Generator, ResidualRestorer, Restorer
from jaxgan.models.generator import class_inputs, num_upsamplings

MODELS = ("generator", "discriminator", "restorer")  # the roles, as `--model` names them


def role_of(arch: Mapping[str, Any]) -> str:
    """The role (one of MODELS) of an architecture record: both restorer forms are a restorer."""
    return "restorer" if arch.get("model") == "residual_restorer" else str(arch.get("model"))


# layout -> (torch -> flax axes, flax -> torch axes)
LAYOUTS = {
    "conv": ((2, 3, 1, 0), (3, 2, 0, 1)),  # OIHW <-> HWIO
    "conv_transpose": ((2, 3, 0, 1), (2, 3, 0, 1)),  # (in, out, kh, kw) <-> (kh, kw, in, out)
    "vector": (None, None),
    "count": (None, None),  # num_batches_tracked: int64 in torch, int32 in flax
    "embedding": (None, None),  # (classes, features) in both
}


class ConversionError(ValueError):
    """A state dict or variable tree that does not fit the model: names the key and the shapes."""


@dataclass(frozen=True)
class Entry:
    torch_key: str
    flax_path: tuple[str, ...]
    layout: str


def _batchnorm(torch_prefix: str, flax_name: str) -> list[Entry]:
    return [
        Entry(f"{torch_prefix}.weight", ("params", flax_name, "scale"), "vector"),
        Entry(f"{torch_prefix}.bias", ("params", flax_name, "bias"), "vector"),
        Entry(f"{torch_prefix}.running_mean", ("batch_stats", flax_name, "mean"), "vector"),
        Entry(f"{torch_prefix}.running_var", ("batch_stats", flax_name, "var"), "vector"),
        Entry(
            f"{torch_prefix}.num_batches_tracked",
            ("batch_stats", flax_name, "num_batches_tracked"),
            "count",
        ),
    ]


SPECTRAL_NORM_KEYS = {  # PyTorch's two spectral_norm APIs: (weight, u, v) under a module's prefix
    "parametrizations": (
        "parametrizations.weight.original",
        "parametrizations.weight.0._u",
        "parametrizations.weight.0._v",
    ),  # torch.nn.utils.parametrizations.spectral_norm
    "legacy": ("weight_orig", "weight_u", "weight_v"),  # torch.nn.utils.spectral_norm
}


def _conditional_batchnorm(torch_prefix: str, flax_name: str) -> list[Entry]:
    """torch_ref's ConditionalBatchNorm2d: running statistics, per-class scale and shift tables."""
    return _batchnorm(torch_prefix, flax_name)[2:] + [
        Entry(f"{torch_prefix}.scale.weight", ("params", flax_name, "scale"), "embedding"),
        Entry(f"{torch_prefix}.shift.weight", ("params", flax_name, "bias"), "embedding"),
    ]


def _conv(
    torch_prefix: str, flax_name: str, spectral_norm: str, layout: str = "conv"
) -> list[Entry]:
    """A convolution's weight, or its spectral-norm weight and power-iteration vectors."""
    if not spectral_norm:
        return [Entry(f"{torch_prefix}.weight", ("params", flax_name, "kernel"), layout)]
    weight, u, v = SPECTRAL_NORM_KEYS[spectral_norm]
    return [
        Entry(f"{torch_prefix}.{weight}", ("params", flax_name, "kernel"), layout),
        Entry(f"{torch_prefix}.{u}", ("spectral", flax_name, "u"), "vector"),
        Entry(f"{torch_prefix}.{v}", ("spectral", flax_name, "v"), "vector"),
    ]


def _conv_with_bias(torch_prefix: str, flax_name: str, layout: str = "conv") -> list[Entry]:
    return [
        Entry(f"{torch_prefix}.weight", ("params", flax_name, "kernel"), layout),
        Entry(f"{torch_prefix}.bias", ("params", flax_name, "bias"), "vector"),
    ]


def residual_restorer_table(arch: Mapping[str, Any]) -> list[Entry]:
    """torch_ref.models.ResidualRestorer: stem, blocks.i.(conv0, bn0, conv1, bn1), upsample,
    head."""
    entries = _conv_with_bias("stem", "stem")
    for i in range(arch["blocks"]):
        for j in (0, 1):
            entries += _conv_with_bias(f"blocks.{i}.conv{j}", f"block_{i}_conv_{j}")
            if arch["batchnorm"]:
                entries += _batchnorm(f"blocks.{i}.bn{j}", f"block_{i}_bn_{j}")
    if arch["unshuffle"] > 1:
        entries += _conv_with_bias("upsample", "upsample", "conv_transpose")
    return entries + _conv_with_bias("head", "head")


def table(arch: Mapping[str, Any]) -> list[Entry]:
    """The conversion table of one model, in PyTorch's `state_dict` order."""
    if arch["model"] == "residual_restorer":
        return residual_restorer_table(arch)
    layers = num_upsamplings(arch["image_size"])
    entries: list[Entry] = []
    embedding = [Entry("embed.weight", ("params", "embed", "embedding"), "embedding")]
    if arch["model"] == "generator":  # [embed] + main = [ConvT, BN, ReLU] * L + [ConvT, Tanh]
        joined, conditional_batchnorm = class_inputs(
            arch.get("num_classes", 0), arch.get("class_conditioning", "embedding")
        )
        norm = _conditional_batchnorm if conditional_batchnorm else _batchnorm
        entries += embedding if joined else []
        for i in range(layers + 1):
            spectral_norm = arch.get("spectral_norm") or ""
            entries += _conv(f"main.{3 * i}", f"conv_{i}", spectral_norm, "conv_transpose")
            if i < layers:
                entries += norm(f"main.{3 * i + 1}", f"bn_{i}")
    elif arch["model"] == "discriminator":
        # main = [Conv, LReLU] + [Conv, BN, LReLU] * (L-1) + [Conv, Sigmoid]; BN only with batchnorm
        index, batchnorm = 0, arch.get("batchnorm", True)
        for i in range(layers + 1):
            entries += _conv(f"main.{index}", f"conv_{i}", arch.get("spectral_norm") or "")
            if batchnorm and 0 < i < layers:
                entries += _batchnorm(f"main.{index + 1}", f"bn_{i}")
            index += 3 if batchnorm and 0 < i < layers else 2
        entries += embedding if arch.get("num_classes") else []  # the projection's class table
    elif arch["model"] == "restorer":
        for i in range(layers):
            entries.append(
                Entry(f"encoder.{i}.0.weight", ("params", f"enc_conv_{i}", "kernel"), "conv")
            )
            if i > 0:
                entries += _batchnorm(f"encoder.{i}.1", f"enc_bn_{i}")
        for j in range(layers):
            entries.append(
                Entry(
                    f"decoder.{j}.0.weight", ("params", f"dec_conv_{j}", "kernel"), "conv_transpose"
                )
            )
            if j < layers - 1:
                entries += _batchnorm(f"decoder.{j}.1", f"dec_bn_{j}")
    else:
        raise ConversionError(f"unknown model {arch['model']!r}; expected one of {MODELS}")
    return entries


def build_model(
    arch: Mapping[str, Any], dtype: Any = jnp.float32, param_dtype: Any = None
) -> nn.Module:
    """The Flax module that an architecture record (see `infer_arch`) describes."""
    kwargs = dict(dtype=dtype, param_dtype=param_dtype or jnp.promote_types(dtype, jnp.float32))
    fields = {k: v for k, v in arch.items() if k != "model"}
    if "spectral_norm" in fields:  # the record names the PyTorch format; the module takes a flag
        fields["spectral_norm"] = bool(fields["spectral_norm"])
    if arch["model"] == "generator":
        return Generator(**fields, **kwargs)
    if arch["model"] == "discriminator":
        return Discriminator(**fields, **kwargs)
    if arch["model"] == "restorer":
        return Restorer(**fields, **kwargs)
    if arch["model"] == "residual_restorer":
        return ResidualRestorer(**fields, **kwargs)
    raise ConversionError(f"unknown model {arch['model']!r}; expected one of {MODELS}")


def variable_shapes(
    arch: Mapping[str, Any], dtype: Any = jnp.float32
) -> dict[tuple[str, ...], tuple]:
    """Flat {path: shape} of the Flax variables, from the model itself (no computation)."""
    model = build_model(arch, dtype)
    size, nc = arch["image_size"], arch["nc"]
    labels = (jnp.zeros((1,), jnp.int32),) if arch.get("num_classes") else ()
    if arch["model"] == "generator":
        inputs = (jnp.zeros((1, arch["nz"]), dtype), *labels)
    elif arch["model"] == "discriminator":
        inputs = (jnp.zeros((1, size, size, nc), dtype), *labels)
    else:
        inputs = (jnp.zeros((1, size, size, nc), dtype), jnp.zeros((1, size, size, 1), dtype))
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs, train=False))
    return {path: leaf.shape for path, leaf in traverse_util.flatten_dict(shapes).items()}


def infer_arch(model: str, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """nc, widths, nz and image size read off the tensors of a PyTorch state dict."""
    if model not in MODELS:
        raise ConversionError(f"unknown model {model!r}; expected one of {MODELS}")

    def weight(key: str):
        if key not in state_dict:
            raise ConversionError(
                f"not a {model} state dict: no key {key!r} (keys: {_preview(state_dict)})"
            )
        return tuple(state_dict[key].shape)

    if model == "restorer" and "stem.weight" in state_dict:  # torch_ref.models.ResidualRestorer
        stem, head = weight("stem.weight"), weight("head.weight")
        blocks = sum(1 for k in state_dict if re.fullmatch(r"blocks\.\d+\.conv0\.weight", k))
        unshuffle = int(round(np.sqrt(stem[1] / (head[0] + 1))))
        return dict(
            model="residual_restorer",
            nc=head[0],
            width=stem[0],
            blocks=blocks,
            unshuffle=unshuffle,
            batchnorm="blocks.0.bn0.weight" in state_dict,
            image_size=64,
        )
    if model == "restorer":
        layers = sum(1 for k in state_dict if re.fullmatch(r"encoder\.\d+\.0\.weight", k))
        first = weight("encoder.0.0.weight")
        skips = (
            layers > 1 and weight("decoder.1.0.weight")[0] == 2 * weight("decoder.0.0.weight")[1]
        )
        return dict(
            model=model,
            nc=first[1] - 1,
            width=first[0],
            image_size=4 * 2**layers,
            skips=bool(skips),
        )
    suffixes = {"weight": "", **{keys[0]: name for name, keys in SPECTRAL_NORM_KEYS.items()}}
    found = {  # conv index -> its weight's key suffix (plain, or one spectral-norm format)
        int(m.group(1)): m.group(2)
        for k in state_dict
        if (m := re.fullmatch(r"main\.(\d+)\.(" + "|".join(map(re.escape, suffixes)) + ")", k))
        and len(state_dict[k].shape) == 4
    }
    convs = sorted(found)
    if len(convs) < 3:
        raise ConversionError(
            f"not a {model} state dict: found {len(convs)} convolution weights "
            f"under 'main.N.weight' (keys: {_preview(state_dict)})"
        )
    first = weight(f"main.{convs[0]}.{found[convs[0]]}")
    last = weight(f"main.{convs[-1]}.{found[convs[-1]]}")
    image_size = 4 * 2 ** (len(convs) - 1)
    if model == "generator":
        arch = dict(model=model, nz=first[0], ngf=last[0], nc=last[1], image_size=image_size)
    else:
        arch = dict(model=model, ndf=first[0], nc=first[1], image_size=image_size)
    if "embed.weight" in state_dict:  # class-conditional: G's class embedding joins its latent
        classes, features = weight("embed.weight")
        arch["num_classes"] = classes
        if model == "generator":
            arch["nz"] = first[0] - features
    if model == "generator" and "main.1.scale.weight" in state_dict:  # conditional BatchNorm
        arch["num_classes"] = weight("main.1.scale.weight")[0]
        arch["class_conditioning"] = "both" if "embed.weight" in state_dict else "batchnorm"
    formats = {suffixes[suffix] for suffix in found.values()}
    if len(formats) > 1:
        raise ConversionError(
            f"a {model} state dict whose convolutions mix spectral-norm formats "
            f"({sorted(formats)}); jaxgan normalises all of a model's convolutions or none"
        )
    if formats != {""}:
        arch["spectral_norm"] = formats.pop()
    if model == "generator":
        return arch
    if not any(re.fullmatch(r"main\.\d+\.running_mean", k) for k in state_dict):
        arch["batchnorm"] = False
    return arch


def torch_to_flax(arch: Mapping[str, Any], state_dict: Mapping[str, Any]) -> dict:
    """A PyTorch state dict (numpy arrays or tensors) -> Flax variables
    {'params', 'batch_stats'}."""
    entries = table(arch)
    expected = variable_shapes(arch)
    optional = {
        e.torch_key for e in entries if e.layout == "count"
    }  # absent in files from old PyTorch
    try:
        check_keys(
            {e.torch_key for e in entries},
            set(state_dict) | optional,
            f"the PyTorch state dict of a {describe(arch)} does not match the model",
        )
    except ConversionError as error:
        raise ConversionError(f"{error}{_guess_model(state_dict, arch['model'])}") from None
    flat = {}
    for entry in entries:
        if entry.torch_key not in state_dict:
            flat[entry.flax_path] = np.zeros((), np.int32)
            continue
        value = to_numpy(state_dict[entry.torch_key])
        axes = LAYOUTS[entry.layout][0]
        value = value.transpose(axes) if axes else value
        if entry.layout == "count":
            value = value.astype(np.int32)
        want = expected[entry.flax_path]
        if value.shape != want:
            torch_want = _torch_shape(want, entry.layout)
            raise ConversionError(
                f"key {entry.torch_key!r}: expected shape {torch_want} for a {describe(arch)}, "
                f"found {tuple(state_dict[entry.torch_key].shape)}"
            )
        flat[entry.flax_path] = value
    check_keys(set(expected), set(flat), "Flax variables do not match the model")
    return traverse_util.unflatten_dict(flat)


def flax_to_torch(arch: Mapping[str, Any], variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flax variables -> a PyTorch state dict of numpy arrays, in `state_dict` order."""
    flat = traverse_util.flatten_dict(dict(variables))
    expected = variable_shapes(arch)
    check_keys(
        set(expected),
        set(flat),
        "Flax variables do not match the model",
        name=lambda p: "/".join(p),
    )
    state_dict = {}
    for entry in table(arch):
        value = np.asarray(flat[entry.flax_path])
        if value.shape != expected[entry.flax_path]:
            raise ConversionError(
                f"{'/'.join(entry.flax_path)}: expected shape {expected[entry.flax_path]} for a "
                f"{describe(arch)}, found {value.shape}"
            )
        axes = LAYOUTS[entry.layout][1]
        value = value.transpose(axes) if axes else value
        value = value.astype(np.int64) if entry.layout == "count" else value
        state_dict[entry.torch_key] = np.require(value, requirements="C")
    return state_dict


def _guess_model(state_dict: Mapping[str, Any], wanted: str) -> str:
    """' (these are the keys of a generator: ...)' when the state dict fits another model
    exactly."""
    for model in MODELS:
        if model == wanted:
            continue
        try:
            if {e.torch_key for e in table(infer_arch(model, state_dict))} == set(state_dict):
                return f" (these are the keys of a {model}: use --model {model})"
        except (ConversionError, KeyError, IndexError, ValueError):  # ValueError: no such size
            continue
    return ""


def _torch_shape(flax_shape: tuple, layout: str) -> tuple:
    axes = LAYOUTS[layout][1]
    return tuple(flax_shape[a] for a in axes) if axes else flax_shape


def check_keys(expected: set, found: set, what: str, name=str) -> None:
    """Every expected key found and no other: else a ConversionError naming (up to 8 of) each side's
    extras."""
    missing, unused = sorted(expected - found, key=str), sorted(found - expected, key=str)
    if missing or unused:
        parts = []
        if missing:
            parts.append(f"missing {[name(k) for k in missing][:8]}")
        if unused:
            parts.append(f"unexpected {[name(k) for k in unused][:8]}")
        raise ConversionError(f"{what}: " + "; ".join(parts))


def describe(arch: Mapping[str, Any]) -> str:
    return (
        arch["model"] + "(" + ", ".join(f"{k}={v}" for k, v in arch.items() if k != "model") + ")"
    )


def _preview(state_dict: Mapping[str, Any]) -> str:
    keys = list(state_dict)
    return ", ".join(keys[:6]) + (f", ... ({len(keys)} in all)" if len(keys) > 6 else "")


def to_numpy(value: Any) -> np.ndarray:
    """A torch tensor (same dtype, bit for bit) or array-like -> numpy array."""
    if hasattr(value, "detach"):  # a torch tensor
        from jaxgan.torch_files import tensor_to_numpy

        return tensor_to_numpy(value)
    return np.asarray(value)
