"""The seed's DCGAN training loop in PyTorch (pytorch/examples' dcgan), on jaxgan's configs and
data.

  python torch_ref/train.py --config dcgan64 [--config.FIELD=VALUE ...] [--workdir DIR]
      [--resume FILE.pth]

Each step is pytorch/examples' loop body: D on the real batch (label 1) and on the detached fake
batch (label 0), BCE, D's Adam step; then G's loss from the updated D on the same fake batch against
label 1, G's Adam step; then the EMA of G's parameters as jaxgan keeps it. With the config's
DiffAugment, each of D's three inputs is augmented (`torch_ref/augment.py`) with the host's draws
for that batch. Batches, latents and draws come from `jaxgan.data` (numpy, keyed by seed and step),
so this loop and `scripts/train.py` see the same numbers.
Checkpoints (`WORKDIR/checkpoints/STEP.pth`, `jaxgan.convert_state`'s layout) hold both models, both
Adam states, the EMA generator, the step, the data position, the seeds and the config; they load
with `torch.load(weights_only=True)`, and `scripts/convert.py state2jax` turns one into a jaxgan
workdir.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from jaxgan import cli, preemption
from jaxgan import config as config_lib
from jaxgan.atomic import atomic_path
from jaxgan.convert_state import FORMAT, FORMAT_VERSION
from jaxgan.data.order import sample_latents
from jaxgan.data.pipeline import Batches
from jaxgan.data.sources import make_source
from jaxgan.loop import Cadence, StepTimer, log_scalars
from jaxgan.monitor import Monitor, image_grid
from jaxgan.sampling import class_rows
from jaxgan.state import ADAM_EPS
from jaxgan.tasks.gan import TASK as GAN
from jaxgan.tasks.gan.augment import parse_policy
from jaxgan.trainer import NonFiniteError, log_line
from torch_ref.augment import diff_augment
from torch_ref.losses import ADVERSARIAL, logits
from torch_ref.models import Discriminator, Generator, spectral_norm, weights_init


@dataclasses.dataclass
class Run:
    """Everything the loop changes: both models and optimisers, the EMA generator and the step."""

    config: config_lib.Config
    generator: Generator
    discriminator: Discriminator
    ema_generator: (
        Generator  # EMA parameters; buffers copied from the live generator after each step
    )
    generator_optimizer: torch.optim.Adam
    discriminator_optimizer: torch.optim.Adam
    step: int = 0

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.generator.parameters()).dtype


def model_dtype(config: config_lib.Config) -> torch.dtype:
    if config.task != "gan":
        raise config_lib.ConfigError(
            f"torch_ref/train.py trains the DCGAN (task 'gan'), not task {config.task!r}"
        )
    if config.dtype == "bfloat16":
        raise config_lib.ConfigError(
            "torch_ref/train.py trains in float32 or float64, not dtype 'bfloat16'"
        )
    return torch.float64 if config.dtype == "float64" else torch.float32


def new_run(config: config_lib.Config, device: str | torch.device = "cpu") -> Run:
    """Fresh models as pytorch/examples makes them: `torch.manual_seed(seed)`, then
    `weights_init`."""
    dtype = model_dtype(config)
    torch.manual_seed(config.seed)
    generator = Generator(
        config.nz,
        config.ngf,
        config.nc,
        config.image_size,
        config.num_classes,
        config.class_conditioning,
    )
    generator.apply(weights_init)
    discriminator = Discriminator(
        config.ndf,
        config.nc,
        config.image_size,
        config.discriminator_batchnorm,
        config.num_classes,
    )
    discriminator.apply(weights_init)
    # after the init, which writes the convolutions' plain weights
    if config.spectral_norm in ("discriminator", "both"):
        spectral_norm(discriminator)
    if config.spectral_norm in ("generator", "both"):
        spectral_norm(generator)
    generator, discriminator = generator.to(device, dtype), discriminator.to(device, dtype)
    ema_generator = copy.deepcopy(generator).requires_grad_(False).eval()

    def adam(model: nn.Module, prefix: str) -> torch.optim.Adam:
        """Adam with the model's own settings (g_* or d_*), the shared ones where those are -1."""
        lr, beta1, beta2 = (
            getattr(config, field)
            if getattr(config, prefix + field) < 0
            else getattr(config, prefix + field)
            for field in ("lr", "beta1", "beta2")
        )
        return torch.optim.Adam(model.parameters(), lr=lr, betas=(beta1, beta2), eps=ADAM_EPS)

    return Run(
        config,
        generator,
        discriminator,
        ema_generator,
        adam(generator, "g_"),
        adam(discriminator, "d_"),
    )


def lr_factor(config: Any, step: int) -> float:
    """The learning rates' multiplier at `step`: linear warm-up, then linear or cosine decay to 0
    at `lr_decay_steps` (jaxgan.tasks.adversarial.Options.lr_factor)."""
    factor = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    if config.lr_decay_steps:
        progress = min(step, config.lr_decay_steps) / config.lr_decay_steps
        factor *= (
            1 - progress
            if config.lr_schedule == "linear"
            else 0.5 * (1 + math.cos(math.pi * progress))
        )
    return factor


def decayed_step(run: Run, optimizer: torch.optim.Adam) -> None:
    """optimizer.step() at lr * lr_factor when the config schedules the learning rate; the group
    keeps lr itself (as jaxgan's state does)."""
    if not run.config.lr_decay_steps and not run.config.warmup_steps:
        optimizer.step()
        return
    group = optimizer.param_groups[0]
    base = group["lr"]
    group["lr"] = base * lr_factor(run.config, run.step)
    optimizer.step()
    group["lr"] = base


def to_model_range(images: np.ndarray, run: Run) -> torch.Tensor:
    """uint8 NHWC -> NCHW in [-1, 1], computed as jaxgan's `to_model_range` does (x / 127.5 - 1)."""
    pixels = torch.from_numpy(np.ascontiguousarray(images)).to(run.device).permute(0, 3, 1, 2)
    return pixels.to(run.dtype) / 127.5 - 1


def train_step(
    run: Run,
    images: np.ndarray,
    latents: np.ndarray,
    augment: np.ndarray | None = None,
    penalty_mix: np.ndarray | None = None,
    labels: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """One step of the seed's loop on uint8 NHWC `images` and (N, nz) `latents`; metrics stay
    tensors. With the config's DiffAugment, `augment` holds the batch's draws (N, USES, NUM_DRAWS);
    with WGAN-GP, `penalty_mix` the interpolation weights (N,); a class-conditional run's G and D
    see the real batch's `labels` (N,). With n_critic = n > 1 each array has a second axis of n
    batches: critic-only updates on the first n - 1, then the seed's step on the last."""
    # The seed's BCELoss on D's Sigmoid: where D saturates (|logit| > 27, or sigmoid rounds to 0 or
    # 1) its values and gradients part from jaxgan's loss on logits, as
    # `jaxgan.losses.bce_with_logits` details.
    config = run.config
    inputs = [images, latents, augment, penalty_mix, labels]
    if config.n_critic > 1:
        for index in range(config.n_critic - 1):
            batch = [None if x is None else np.asarray(x)[:, index] for x in inputs]
            classes = label_tensor(run, batch[4])
            fake = run.generator(noise_tensor(run, batch[1]), classes)
            discriminator_update(
                run, to_model_range(batch[0], run), fake.detach(), batch[2], batch[3], classes
            )
        inputs = [None if x is None else np.asarray(x)[:, -1] for x in inputs]
    images, latents, augment, penalty_mix, labels = inputs
    classes = label_tensor(run, labels)
    fake = run.generator(noise_tensor(run, latents), classes)  # (N, nc, S, S)
    metrics = discriminator_update(
        run, to_model_range(images, run), fake.detach(), augment, penalty_mix, classes
    )

    # (2) Update G: maximise log(D(G(z))), through the updated D.
    run.generator.zero_grad()
    _, output, probabilities = judge(run, augmented(run, fake, augment, 2), classes)
    g_loss = ADVERSARIAL[config.loss].generator(output)
    g_loss.backward()
    decayed_step(run, run.generator_optimizer)
    update_ema(run)
    run.step += 1
    metrics.update(g_loss=g_loss, d_g_z2=probabilities.mean())
    return {name: value.detach() for name, value in metrics.items()}


def label_tensor(run: Run, labels: np.ndarray | None) -> torch.Tensor | None:
    """(N,) host labels -> int64 class indices (None for an unconditional run)."""
    if not run.config.num_classes:
        return None
    return torch.from_numpy(np.asarray(labels)).to(run.device, torch.int64)


def noise_tensor(run: Run, latents: np.ndarray) -> torch.Tensor:
    """(N, nz) host latents -> G's (N, nz, 1, 1) input."""
    noise = torch.from_numpy(np.asarray(latents)).to(run.device, run.dtype)
    return noise.view(len(latents), -1, 1, 1)


def augmented(run: Run, images: torch.Tensor, augment: np.ndarray | None, use: int):
    """D's view of a batch: DiffAugment with the batch's draw `use`, or the images themselves."""
    operations = parse_policy(run.config.augment)
    if not operations:
        return images
    return diff_augment(
        images, torch.from_numpy(np.asarray(augment)).to(run.device)[:, use], operations
    )


def judge(
    run: Run, images: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """D on `images` (of classes `labels`): (its logits, what the loss takes, the Sigmoid
    outputs), all (N,)."""
    scores = logits(run.discriminator, images, labels)
    probabilities = run.discriminator.main[-1](scores)  # the seed's last layer, its Sigmoid
    on_logits = ADVERSARIAL[run.config.loss].on_logits
    return scores, scores if on_logits else probabilities, probabilities


def discriminator_update(
    run: Run,
    real: torch.Tensor,
    fake: torch.Tensor,
    augment: np.ndarray | None,
    penalty_mix: np.ndarray | None,
    labels: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """(1) Update D: maximise log(D(x)) + log(1 - D(G(z))) (or the config's loss), on the real
    batch, then the detached fake one, then (WGAN-GP) their interpolates; one Adam step."""
    config, loss = run.config, ADVERSARIAL[run.config.loss]
    run.discriminator.zero_grad()
    shown_real = augmented(run, real, augment, 0)
    r1_now = config.r1_gamma > 0 and run.step % config.r1_every == 0
    if r1_now:
        shown_real = shown_real.detach().requires_grad_(True)
    scores, output, probabilities = judge(run, shown_real, labels)
    d_loss_real = loss.real(output)
    if r1_now:  # R1 on D's logits of the real batch, lazily weighted by r1_every
        (grad,) = torch.autograd.grad(scores.sum(), shown_real, create_graph=True)
        r1 = config.r1_gamma / 2 * grad.square().sum(dim=(1, 2, 3)).mean() * config.r1_every
        (d_loss_real + r1).backward()
    else:
        d_loss_real.backward()
    d_x = probabilities.mean()
    shown_fake = augmented(run, fake, augment, 1)
    _, output, probabilities = judge(run, shown_fake, labels)
    d_loss_fake = loss.fake(output)
    d_loss_fake.backward()
    metrics = {
        "d_loss": d_loss_real + d_loss_fake,
        "d_loss_real": d_loss_real,
        "d_loss_fake": d_loss_fake,
        "d_x": d_x,
        "d_g_z1": probabilities.mean(),
    }
    if config.r1_gamma > 0:
        metrics["d_r1"] = r1 if r1_now else torch.zeros((), dtype=run.dtype)
    if config.gradient_penalty > 0:  # WGAN-GP on the interpolates of D's two views
        weight = (
            torch.from_numpy(np.asarray(penalty_mix)).to(run.device, run.dtype).view(-1, 1, 1, 1)
        )
        mixed = weight * shown_real.detach() + (1 - weight) * shown_fake.detach()
        mixed.requires_grad_(True)
        scores, _, _ = judge(run, mixed, labels)
        (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
        penalty = config.gradient_penalty * ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        penalty.backward()
        metrics["d_gp"] = penalty
    decayed_step(run, run.discriminator_optimizer)
    return metrics


@torch.no_grad()
def update_ema(run: Run) -> None:
    """ema = decay * ema + (1 - decay) * params, in the parameters' dtype (as jaxgan's finish_step),
    with jaxgan's warm-up decay = min(ema_decay, (1 + step) / (10 + step)); `run.step` is the
    0-based update."""
    step = torch.tensor(run.step, dtype=run.dtype, device=run.device)
    decay = torch.minimum(
        torch.tensor(run.config.ema_decay, dtype=run.dtype, device=run.device),
        (1 + step) / (10 + step),
    )
    for ema, live in zip(run.ema_generator.parameters(), run.generator.parameters(), strict=True):
        ema.copy_(decay * ema + (1 - decay) * live)
    for ema, live in zip(run.ema_generator.buffers(), run.generator.buffers(), strict=True):
        ema.copy_(live)


@torch.no_grad()
def sample_grid(run: Run, latents: torch.Tensor) -> np.ndarray:
    """The EMA generator in eval mode on fixed latents -> a uint8 grid (as jaxgan's sample
    grids: a class-conditional one draws one row per class)."""
    classes, columns = run.config.num_classes, None
    labels = None
    if classes:
        rows = class_rows(classes, len(latents))
        latents, labels, columns = (
            latents[: len(rows)],
            label_tensor(run, rows),
            len(rows) // classes,
        )
    images = run.ema_generator(latents.view(len(latents), -1, 1, 1), labels)
    return image_grid(images.permute(0, 2, 3, 1).float().cpu().numpy(), columns)


def to_checkpoint(run: Run) -> dict:
    """The training state as one dict of CPU tensor copies and plain values (`weights_only`
    loadable)."""
    config = run.config

    def cpu(value):
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().clone()
        if isinstance(value, dict):
            return {k: cpu(v) for k, v in value.items()}
        return copy.deepcopy(value)

    return cpu(
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "step": run.step,
            "data_position": config.data_position(run.step),
            "seeds": {"seed": config.seed, "data_seed": config.resolved_data_seed},
            "config": config.to_dict(),
            "generator": run.generator.state_dict(),
            "discriminator": run.discriminator.state_dict(),
            "ema_generator": run.ema_generator.state_dict(),
            "generator_optimizer": run.generator_optimizer.state_dict(),
            "discriminator_optimizer": run.discriminator_optimizer.state_dict(),
        }
    )


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint file, read with `weights_only=True` (no code is unpickled)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path}: not a torch_ref training checkpoint (format {FORMAT!r})")
    if checkpoint["format_version"] != FORMAT_VERSION:
        raise ValueError(
            f"{path}: checkpoint format version {checkpoint['format_version']}; this torch_ref "
            f"reads version {FORMAT_VERSION}"
        )
    return checkpoint


def restore(run: Run, checkpoint: dict, source: str = "checkpoint") -> Run:
    """Load a checkpoint into `run`, refusing one whose config would change the numbers."""
    saved = config_lib.from_dict(checkpoint["config"], source=f"{source} config")
    changed = config_lib.differences(saved, run.config)
    if changed:
        details = ", ".join(
            f"{n}: {getattr(saved, n)!r} -> {getattr(run.config, n)!r}" for n in changed
        )
        raise config_lib.ConfigError(
            f"{source} holds a run with a different config ({details}); these fields "
            "change the numbers, so the run cannot resume with them"
        )
    expected = run.config.data_position(int(checkpoint["step"]))
    if checkpoint["data_position"] != expected:
        raise ValueError(
            f"{source}: data position {checkpoint['data_position']} differs from {expected}, the "
            f"step {checkpoint['step']} times the {run.config.n_critic} batch(es) a step reads"
        )
    for name in (
        "generator",
        "discriminator",
        "ema_generator",
        "generator_optimizer",
        "discriminator_optimizer",
    ):
        getattr(run, name).load_state_dict(checkpoint[name])
    run.step = int(checkpoint["step"])
    return run


def save_checkpoint(run: Run, path: str | os.PathLike) -> Path:
    """Write `to_checkpoint(run)` atomically: a crash leaves the old file or none, never half of
    one."""
    path = Path(path)
    with atomic_path(path) as temporary:
        torch.save(to_checkpoint(run), temporary)
    return path


def checkpoint_steps(workdir: str | os.PathLike) -> list[int]:
    directory = Path(workdir) / "checkpoints"
    return (
        sorted(int(p.stem) for p in directory.glob("*.pth") if p.stem.isdigit())
        if directory.is_dir()
        else []
    )


def checkpoint_path(workdir: str | os.PathLike, step: int) -> Path:
    return Path(workdir) / "checkpoints" / f"{step}.pth"


def all_finite(run: Run) -> bool:
    return all(
        bool(torch.isfinite(p).all())
        for model in (run.generator, run.discriminator)
        for p in model.parameters()
    )


def train(
    config: config_lib.Config,
    workdir: str | os.PathLike,
    resume: str | os.PathLike | None = None,
    device: str | None = None,
) -> Run:
    """Train (or resume) in `workdir`: from its latest checkpoint, or from `resume`, or from
    scratch."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    workdir = Path(workdir)
    steps = checkpoint_steps(workdir)
    if resume is not None and steps:
        raise ValueError(
            f"{workdir} already holds checkpoints (latest: step {steps[-1]}); it resumes from them "
            "by itself: drop --resume, or give another --workdir"
        )
    run = new_run(config, device)
    source = (
        resume if resume is not None else (checkpoint_path(workdir, steps[-1]) if steps else None)
    )
    if source is not None:
        restore(run, load_checkpoint(source), str(source))
    start = run.step
    data = make_source(config)
    monitor = Monitor(workdir, start, config.num_steps, hparams=config.to_dict())
    monitor.write(
        f"torch_ref: {device}, {config.dtype}"
        + (f"; resuming from {source} (step {start})" if source is not None else "")
    )
    monitor.write(f"data: {data.describe()}")
    batches = Batches(
        data,
        config.batch_size,
        config.resolved_data_seed,
        latent_seed=config.seed,
        latent_dtype=np.float64 if config.dtype == "float64" else np.float32,
        **GAN.batch_options(config),
    )
    fixed_latents = torch.from_numpy(sample_latents(config.seed, config.num_samples, config.nz)).to(
        device, run.dtype
    )
    saved, cadence, step_timer = start, Cadence(config), StepTimer(start)

    def save(step: int) -> None:
        nonlocal saved
        if not all_finite(run):
            raise NonFiniteError(
                f"non-finite parameters at step {step}; not saved: the last good checkpoint "
                f"stays the latest"
            )
        save_checkpoint(run, checkpoint_path(workdir, step))
        for old in checkpoint_steps(workdir)[: -config.keep_checkpoints]:
            checkpoint_path(workdir, old).unlink()
        saved = step

    try:
        with preemption.StopRequest() as stop:
            for _, batch in zip(
                range(start, config.num_steps),
                batches.iterate(start, config.num_steps, config.loader_threads),
            ):
                metrics = train_step(
                    run,
                    batch["images"],
                    batch["latents"],
                    batch.get("augment"),
                    batch.get("penalty_mix"),
                    batch.get("labels"),
                )
                done = run.step
                monitor.advance()
                moments = cadence.after(done)
                if moments.log:
                    values = {name: float(value) for name, value in metrics.items()}
                    if not all(np.isfinite(list(values.values()))):
                        raise NonFiniteError(
                            f"non-finite losses at step {done} ({values}); stopping: the last "
                            f"good checkpoint (step {saved}) stays the latest"
                        )
                    seconds = step_timer.lap(done)
                    monitor.log(
                        done,
                        log_scalars(GAN.log_names, values, seconds, config.batch_size),
                        log_line(GAN.shown, done, values, seconds),
                    )
                if moments.sample:
                    monitor.images(done, sample_grid(run, fixed_latents))
                stopping = stop.requested(done)
                if moments.save or stopping:
                    save(done)
                if stopping:
                    monitor.write(
                        f"stopping on signal {stop.signal_name}: checkpoint written at step {done}"
                    )
                    break
    finally:
        monitor.close()
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    cli.add_config_flag(parser)
    parser.add_argument(
        "--workdir",
        help="where checkpoints, logs and samples go (default: workdirs/torch_CONFIG); "
        "an existing workdir resumes from its latest checkpoint",
    )
    parser.add_argument(
        "--resume", help="start from this checkpoint (e.g. from `scripts/convert.py state2torch`)"
    )
    parser.add_argument("--device", help="cuda, cpu, ... (default: cuda when available)")
    args, config = cli.load_config(parser, argv)
    workdir = args.workdir or f"workdirs/torch_{args.config.rsplit('/', 1)[-1].removesuffix('.py')}"
    try:
        train(config, workdir, args.resume, args.device)
    except (NonFiniteError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"done: checkpoints, samples, metrics.jsonl and TensorBoard logs are in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
