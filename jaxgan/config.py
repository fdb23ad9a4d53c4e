"""Configs: one flat, typed dataclass; files in configs/NAME.py return it; `--config.FIELD=VALUE`
overrides.

Unknown fields and values of the wrong type are errors that name the field and list the valid ones.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from typing import Any

DTYPES = ("float32", "bfloat16", "float64")
PRECISIONS = (
    "default",
    "high",
    "highest",
)  # jax.lax.Precision of every convolution and matrix product
TASKS = ("gan", "restore")
DEGRADATIONS = (
    "centre_square",
    "random_boxes",
    "strokes",
    "mixed_holes",
    "noise",
    "downsample",
    "jpeg",
)
RESTORERS = ("residual", "encoder_decoder")
SPECTRAL_NORM = ("", "discriminator", "generator", "both")  # which models are normalised
CLASS_CONDITIONING = ("embedding", "batchnorm", "both")  # how a class-conditional G sees the class


def spectral_norm_of(config: Config, role: str) -> bool:
    """Whether `role`'s ("generator" or "discriminator") convolutions are spectrally normalised."""
    return config.spectral_norm in (role, "both")


LR_SCHEDULES = ("linear", "cosine")


@dataclasses.dataclass(frozen=True)
class Config:
    """Every setting of a run. Defaults are the seed's DCGAN-64 (pytorch/examples' dcgan)."""

    # What to train and on what.
    task: str = "gan"  # "gan" (G and D) or "restore" (R and D)
    data: str = ""  # "digits", "photos", "fake" or a folder of images; "" = the built-in default
    data_split: str = "train"  # "train", "validation", "test" or "all" (built-in data's splits)
    max_examples: int = 0  # 0: every example; N: train on the data's first N (small-data studies)
    image_size: int = 64
    nc: int = 3  # image channels
    # Models.
    nz: int = 100
    num_classes: int = 0  # 0: unconditional; N: G and D conditioned on the data's N classes
    # How G sees the class: "embedding" (joined to z), "batchnorm" (conditional BN) or "both".
    class_conditioning: str = "embedding"
    ngf: int = 64
    ndf: int = 64
    restorer: str = "residual"  # "residual" (input + learned correction) or "encoder_decoder"
    restorer_width: int = 64
    restorer_blocks: int = 4  # residual: blocks of two 3x3 convolutions
    restorer_unshuffle: int = 2  # residual: features on a grid of 1/unshuffle the image's side
    restorer_batchnorm: bool = False  # residual: BatchNorm in the blocks
    restorer_skips: bool = True  # encoder_decoder: U-Net skips
    # Optimisation.
    batch_size: int = 64  # global, over all devices and processes
    num_steps: int = 10_000
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # Two time-scale updates: each model's own Adam settings; -1 = the shared lr / beta1 / beta2
    # above. "g" is the trained model (G, or the restorer R), "d" the discriminator.
    g_lr: float = -1.0
    d_lr: float = -1.0
    g_beta1: float = -1.0
    d_beta1: float = -1.0
    g_beta2: float = -1.0
    d_beta2: float = -1.0
    lr_decay_steps: int = 0  # 0: constant learning rates; N: decay to 0 at step N
    lr_schedule: str = "linear"  # the decay's shape: "linear" or "cosine"
    warmup_steps: int = 0  # linear warm-up of the learning rates from lr / warmup_steps
    seed: int = 0
    data_seed: int = -1  # -1: the same as seed
    ema_decay: float = 0.0  # 0 = no EMA of the generator
    augment: str = ""  # DiffAugment of D's inputs: "" or a subset of "color,translation,cutout"
    loss: str = "bce"  # the adversarial loss, by name (`jaxgan.losses.ADVERSARIAL`)
    r1_gamma: float = 0.0  # R1 penalty gamma / 2 * E|grad_x D(x)|^2 on real images; 0 = off
    r1_every: int = 1  # lazy R1: every k-th step, weighted k (StyleGAN2)
    gradient_penalty: float = 0.0  # WGAN-GP's lambda * E(|grad D(mix)| - 1)^2; 0 = off (paper: 10)
    n_critic: int = (
        1  # D updates per G update, each on its own batch: a step reads n_critic batches
    )
    spectral_norm: str = ""  # spectral normalisation of every convolution of "discriminator",
    # "generator" or "both"
    discriminator_batchnorm: bool = True  # False: D without its BatchNorm layers
    dtype: str = (
        "float32"  # float32, bfloat16 (compute; float32 parameters) or float64 (verification)
    )
    precision: str = (
        "highest"  # of G/D/R's convolutions and products on GPU/TPU: docs/scaling.md, "Precision"
    )
    # Restoration (task="restore").
    degradation: str = "centre_square"
    lambda_rec: float = 0.999
    lambda_adv: float = 0.001
    reconstruction_loss: str = "l2"  # "l1" or "l2"
    noise_sigma: float = 25.0  # Gaussian noise, on the 0..255 scale (evaluation's, and training's
    # unless noise_sigma_max is set)
    noise_sigma_max: float = 0.0  # blind denoising: each training image's sigma from U(0, max)
    hole_fill: str = "harmonic"  # what a hole holds before restoration: "harmonic" or "zero"
    dihedral: bool = False  # random flips and 90-degree rotations of each training crop (8-fold)
    scale_factor: int = 4  # super-resolution: 2 or 4
    downsampler: str = "bicubic"  # "bicubic" or "area"
    jpeg_quality: int = 20
    # Bookkeeping: these may change when a run resumes.
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    eval_every: int = 0  # 0 = no evaluation during training
    eval_num: int = 1000  # images generated (or held-out crops restored) per evaluation
    num_samples: int = 64  # images in each sample grid
    loader_threads: int = 8

    def replace(self, **changes: Any) -> Config:
        return check(dataclasses.replace(self, **changes))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def resolved_data_seed(self) -> int:
        return self.seed if self.data_seed < 0 else self.data_seed

    def data_position(self, step: int) -> int:
        """Global batches read by the end of `step` steps: each step reads `n_critic` of them."""
        return step * self.n_critic


# Fields that may differ between a run and its resumption: they change no number of the training.
RESUMABLE_FIELDS = frozenset(
    {
        "num_steps",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "keep_checkpoints",
        "eval_every",
        "eval_num",
        "num_samples",
        "loader_threads",
    }
)
FIELDS = {f.name: f for f in dataclasses.fields(Config)}
CONFIG_DIRS = (Path(__file__).parent / "configs", Path(__file__).parent.parent / "configs")


class ConfigError(ValueError):
    """A config that cannot be used: the message names the field."""


def _valid_fields() -> str:
    return ", ".join(FIELDS)


def check(config: Config) -> Config:
    """Validate field types and allowed values; return the config."""
    for name, field in FIELDS.items():
        value = getattr(config, name)
        expected = {"int": int, "float": (int, float), "str": str, "bool": bool}[field.type]
        if not isinstance(value, expected) or (field.type == "int" and isinstance(value, bool)):
            raise ConfigError(f"config field {name!r} must be {field.type}, got {value!r}")
    choices = {
        "dtype": DTYPES,
        "task": TASKS,
        "degradation": DEGRADATIONS,
        "data_split": ("train", "validation", "test", "all"),
        "reconstruction_loss": ("l1", "l2"),
        "downsampler": ("bicubic", "area"),
        "image_size": (32, 64, 128),
        "scale_factor": (2, 4),
        "precision": PRECISIONS,
        "restorer": RESTORERS,
        "restorer_unshuffle": (1, 2, 4),
        "lr_schedule": LR_SCHEDULES,
        "hole_fill": ("harmonic", "zero"),
        "class_conditioning": CLASS_CONDITIONING,
    }
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ConfigError(
                f"config field {name!r} must be one of {allowed}, got {getattr(config, name)!r}"
            )
    from jaxgan.losses import ADVERSARIAL

    if config.loss not in ADVERSARIAL:
        raise ConfigError(
            f"config field 'loss' must be one of {tuple(ADVERSARIAL)}, got {config.loss!r}"
        )
    if config.augment:
        from jaxgan.tasks.gan.augment import parse_policy

        try:
            parse_policy(config.augment)
        except ValueError as error:
            raise ConfigError(f"config field 'augment': {error}") from None
    for name in ("g_lr", "d_lr", "g_beta1", "d_beta1", "g_beta2", "d_beta2"):
        if getattr(config, name) < 0 and getattr(config, name) != -1:
            raise ConfigError(
                f"config field {name!r} must be -1 (the shared value) or at least 0, "
                f"got {getattr(config, name)}"
            )
    if config.spectral_norm not in SPECTRAL_NORM:
        raise ConfigError(
            f"config field 'spectral_norm' must be one of {SPECTRAL_NORM}, "
            f"got {config.spectral_norm!r}"
        )
    for name in (
        "num_classes",
        "max_examples",
        "r1_gamma",
        "gradient_penalty",
        "lr_decay_steps",
        "warmup_steps",
        "noise_sigma",
        "noise_sigma_max",
    ):
        if getattr(config, name) < 0:
            raise ConfigError(
                f"config field {name!r} must be at least 0, got {getattr(config, name)}"
            )
    for name in (
        "r1_every",
        "n_critic",
        "batch_size",
        "nz",
        "ngf",
        "ndf",
        "restorer_width",
        "restorer_blocks",
        "nc",
        "log_every",
        "sample_every",
        "checkpoint_every",
        "keep_checkpoints",
        "num_samples",
    ):
        if getattr(config, name) < 1:
            raise ConfigError(
                f"config field {name!r} must be at least 1, got {getattr(config, name)}"
            )
    if config.task != "gan" and config.num_classes:
        raise ConfigError(
            f"config field 'num_classes' makes a class-conditional GAN (task 'gan'), not task "
            f"{config.task!r}"
        )
    if config.class_conditioning != "embedding" and not config.num_classes:
        raise ConfigError(
            f"config field 'class_conditioning' is {config.class_conditioning!r} but num_classes "
            "is 0: it says how a class-conditional G sees the class"
        )
    if config.task != "gan" and (config.gradient_penalty or config.n_critic != 1):
        raise ConfigError(
            "config fields 'gradient_penalty' and 'n_critic' train a GAN's critic (task 'gan'); "
            f"task {config.task!r} has gradient_penalty {config.gradient_penalty} and n_critic "
            f"{config.n_critic}"
        )
    return dataclasses.replace(
        config, **{n: float(getattr(config, n)) for n, f in FIELDS.items() if f.type == "float"}
    )


def parse_value(name: str, text: str) -> Any:
    """`--config.NAME=TEXT` -> a value of the field's type."""
    if name not in FIELDS:
        raise ConfigError(f"unknown config field {name!r}; valid fields: {_valid_fields()}")
    kind = FIELDS[name].type
    try:
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return {"int": int, "float": float, "str": str}[kind](text)
    except ValueError:
        raise ConfigError(f"config field {name!r} takes a {kind}, got {text!r}") from None


def apply_overrides(config: Config, overrides: dict[str, str]) -> Config:
    """Apply {field: text} overrides (from `--config.FIELD=VALUE` flags)."""
    return check(
        dataclasses.replace(config, **{k: parse_value(k, v) for k, v in overrides.items()})
    )


def from_dict(values: dict[str, Any], source: str = "config") -> Config:
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown config field(s) {unknown}; valid fields: {_valid_fields()}"
        )
    return check(Config(**values))


def config_path(name: str) -> Path:
    """`dcgan64` -> the shipped configs/dcgan64.py; a path to a .py file -> itself."""
    if name.endswith(".py") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    for directory in CONFIG_DIRS:
        if (directory / f"{name}.py").is_file():
            return directory / f"{name}.py"
    raise ConfigError(f"unknown config {name!r}; shipped configs: {', '.join(available())}")


def available() -> list[str]:
    return sorted(
        {
            p.stem
            for d in CONFIG_DIRS
            if d.is_dir()
            for p in d.glob("*.py")
            if not p.stem.startswith("_")
        }
    )


def load(name: str, overrides: dict[str, str] | None = None) -> Config:
    """Load configs/NAME.py (or a file path), whose `get_config()` returns a Config, then apply
    overrides."""
    path = config_path(name)
    spec = importlib.util.spec_from_file_location(f"jaxgan_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"config file {path} defines no get_config()")
    config = module.get_config()
    if not isinstance(config, Config):
        raise ConfigError(
            f"{path}: get_config() must return jaxgan.config.Config, got {type(config).__name__}"
        )
    return apply_overrides(check(config), overrides or {})


def differences(old: Config, new: Config) -> list[str]:
    """Fields that differ and change the numbers of a run (so forbid resuming)."""
    return [n for n in FIELDS if n not in RESUMABLE_FIELDS and getattr(old, n) != getattr(new, n)]


def dumps(config: Config) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True)
