"""The PyTorch side of scripts/benchmark.py: pytorch/examples' DCGAN step (and the restorer's),
eager or `torch.compile`, on fake data already on the device."""

from __future__ import annotations

import resource
import time
from typing import Any

import torch
from torch import nn

from torch_ref.models import Discriminator, Generator, Restorer, weights_init

SIZES = {"dcgan64": 64, "dcgan32": 32, "restorer64": 64}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}


def make_step(model: str, batch: int, dtype: str, mode: str, device: str):
    """A closure doing one training step of `model` (D update, then G or R update), as the seed's
    loop."""
    size = SIZES[model]
    precision = torch.float64 if dtype == "float64" else torch.float32
    generator = (
        Restorer(3, 64, size, skips=True) if model == "restorer64" else Generator(100, 64, 3, size)
    )
    discriminator = Discriminator(64, 3, size)
    for module in (generator, discriminator):
        module.apply(weights_init)
        module.to(device=device, dtype=precision)
    optimizers = [
        torch.optim.Adam(m.parameters(), lr=2e-4, betas=(0.5, 0.999))
        for m in (discriminator, generator)
    ]
    forward_g, forward_d = generator, discriminator
    if mode == "compile":
        forward_g, forward_d = torch.compile(generator), torch.compile(discriminator)
    criterion = nn.BCELoss()
    real = torch.rand(batch, 3, size, size, device=device, dtype=precision) * 2 - 1
    ones = torch.ones(batch, device=device, dtype=precision)
    zeros = torch.zeros(batch, device=device, dtype=precision)
    latents = torch.randn(batch, 100, 1, 1, device=device, dtype=precision)
    mask = torch.zeros(batch, 1, size, size, device=device, dtype=precision)
    mask[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    autocast = torch.autocast(
        device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bfloat16"
    )

    def step() -> None:
        with autocast:
            discriminator.zero_grad()
            loss_real = criterion(forward_d(real).view(-1).float(), ones.float())
            loss_real.backward()
            fake = (
                forward_g(real * (1 - mask), mask) if model == "restorer64" else forward_g(latents)
            )
            loss_fake = criterion(forward_d(fake.detach()).view(-1).float(), zeros.float())
            loss_fake.backward()
            optimizers[0].step()
            generator.zero_grad()
            loss = criterion(forward_d(fake).view(-1).float(), ones.float())
            if model == "restorer64":
                loss = 0.001 * loss + 0.999 * ((fake - real) ** 2 * mask).sum() / (mask.sum() * 3)
            loss.backward()
            optimizers[1].step()

    return step


def measure_torch(
    model: str,
    batch: int,
    dtype: str,
    steps: int,
    mode: str = "eager",
    device: str = "cpu",
    warmup: int = 2,
) -> dict[str, Any]:
    """First-step (compile) time and per-step times of the PyTorch step for one configuration."""
    step = make_step(model, batch, dtype, mode, device)
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    step()
    synchronize()
    first_s = time.perf_counter() - start
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if device.startswith("cuda"):
        peak, name = torch.cuda.max_memory_allocated() / 2**20, torch.cuda.get_device_name()
    else:
        peak, name = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu"
    return {
        "framework": "torch",
        "mode": mode,
        "step_s": times,
        "compile_s": first_s if mode == "compile" else 0.0,
        "flops_per_step": None,
        "peak_mem_mb": peak,
        "device": name,
        "threads": torch.get_num_threads(),
    }
