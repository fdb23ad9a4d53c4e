"""Measurements behind scripts/benchmark.py: jaxgan's compiled train step and the input pipeline.

Each measurement runs in its own process (the script starts one per contender and round), on data
already on the device, so that only the step is timed.
"""

from __future__ import annotations

import functools
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxgan.config import Config
from jaxgan.tasks import get_task

MODELS = {
    "dcgan64": dict(task="gan", image_size=64),
    "dcgan32": dict(task="gan", image_size=32),
    "restorer64": dict(task="restore", image_size=64, degradation="centre_square"),
}


def bench_config(model: str, batch: int, dtype: str) -> Config:
    """The seed's widths (64), 3 channels, fake data: the configuration every contender runs."""
    return Config(**MODELS[model], data="fake", batch_size=batch, dtype=dtype, nc=3)


def fake_batch(config: Config, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (config.batch_size, config.image_size, config.image_size, config.nc)
    batch = {"images": rng.integers(0, 256, shape, dtype=np.uint8)}
    nz = get_task(config.task).batch_options(config).get("nz")
    if nz:
        batch["latents"] = rng.standard_normal((config.batch_size, nz)).astype(np.float32)
    return batch


def peak_memory_mb(device: jax.Device) -> float:
    """Peak device memory on accelerators; on CPU the process's peak resident memory."""
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_steps(
    compile_step: Callable[[], Callable], state: Any, data: Any, steps: int, warmup: int
) -> tuple[float, list[float], Any]:
    """(compile seconds, per-step seconds, the compiled step) of `compile_step()`'s step on fixed
    data."""
    start = time.perf_counter()
    compiled = compile_step()
    compile_s = time.perf_counter() - start
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        state, metrics = compiled(state, data)
        jax.block_until_ready(metrics)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return compile_s, times, compiled


def measure_jaxgan(
    model: str, batch: int, dtype: str, steps: int, warmup: int = 2
) -> dict[str, Any]:
    """Compile time, FLOPs and per-step times of jaxgan's train step for one configuration."""
    from jaxgan import sharding
    from jaxgan.state import enable_precision, init_state, make_modules
    from jaxgan.tasks import get_task

    config = bench_config(model, batch, dtype)
    enable_precision(config)
    mesh = sharding.make_mesh()
    modules = make_modules(config)
    step = sharding.compile_step(get_task(config.task).step(config, modules), mesh)
    state = jax.jit(
        functools.partial(init_state, config, modules), out_shardings=sharding.replicated(mesh)
    )()
    data = sharding.to_global(fake_batch(config), mesh)
    compile_s, times, compiled = _time_steps(
        lambda: step.lower(state, data).compile(), state, data, steps, warmup
    )
    costs = compiled.cost_analysis()
    costs = costs[0] if isinstance(costs, list) else costs
    device = jax.devices()[0]
    return {
        "framework": "jaxgan",
        "mode": "jit",
        "step_s": times,
        "compile_s": compile_s,
        "flops_per_step": float(costs.get("flops", 0.0)) if costs else None,
        "peak_mem_mb": peak_memory_mb(device),
        "device": device.device_kind,
        "threads": cpu_threads(device),
    }


def measure_sweep(runs: int, batch: int, steps: int, form: str, warmup: int = 2) -> dict[str, Any]:
    """Fresh compile time and images per second over all runs of K dcgan32 runs: one after another
    (`sequential`: the single step, timed once, as each run costs the same) or as one sweep of
    `form` (a `jaxgan.sweep.MODES` entry: `auto` is the backend's choice). JAX's persistent
    compilation cache is off, so every compile time is a whole compilation."""
    from jaxgan import sharding, sweep
    from jaxgan.state import make_modules

    jax.config.update("jax_enable_compilation_cache", False)
    config = bench_config("dcgan32", batch, "float32")
    if form == "sequential":
        result = measure_jaxgan("dcgan32", batch, "float32", steps, warmup)
        return {
            "form": form,
            "runs": runs,
            "img_per_s": batch / float(np.median(result["step_s"])),
            "compile_s": result["compile_s"],
            "device": result["device"],
        }
    modules = make_modules(config)
    mesh = sharding.make_sweep_mesh(runs)
    state = sweep.init_sweep(config, [config.replace(seed=k) for k in range(runs)], modules, mesh)
    batches = fake_batch(config)
    stacked = {k: np.stack([v] * runs) for k, v in batches.items()}
    data = sharding.to_global_sweep(stacked, mesh, runs, batch)
    step = sweep.make_sweep_step(config, modules, runs, mesh, form)
    compile_s, times, _ = _time_steps(lambda: step.compile(state, data), state, data, steps, warmup)
    return {
        "form": f"sweep ({step.mode})",
        "runs": runs,
        "img_per_s": runs * batch / float(np.median(times)),
        "compile_s": compile_s,
        "device": jax.devices()[0].device_kind,
    }


def cpu_threads(device: jax.Device) -> int:
    return len(os.sched_getaffinity(0)) if device.platform == "cpu" else 0


def write_image_folder(folder: Path, count: int, size: int = 256, seed: int = 0) -> Path:
    """`count` random-content JPEGs of `size` x `size` (smooth noise, so they compress like
    photos)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        coarse = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        image.save(folder / f"{i:05d}.jpg", quality=90)
    return folder


def measure_loader(
    data: str, image_size: int, batch: int, steps: int, threads: int
) -> dict[str, Any]:
    """Images per second that `Batches.iterate` delivers for a data set (a folder of JPEGs is made
    if data='folder', and prepared with jaxgan.data.prepared, untimed, if data='prepared')."""
    from jaxgan.data.pipeline import Batches
    from jaxgan.data.sources import make_source

    label = {
        "folder": "folder of 256x256 JPEGs",
        "prepared": "the folder, prepared (ArrayRecord)",
    }.get(data, data)
    with tempfile.TemporaryDirectory() as directory:
        if data in ("folder", "prepared"):
            folder = str(write_image_folder(Path(directory) / "images", count=512))
            if data == "prepared":
                from jaxgan.data.prepared import prepare

                prepare(
                    folder,
                    Path(directory) / "prepared",
                    image_size,
                    3,
                    progress=False,
                    log=lambda line: None,
                )
            data = folder if data == "folder" else str(Path(directory) / "prepared")
        config = Config(data=data, image_size=image_size, batch_size=batch)
        batches = Batches(make_source(config), batch, 0, latent_seed=0, nz=config.nz)
        iterator = batches.iterate(0, steps + 1, threads=threads)
        next(iterator)  # start-up (thread pool, caches) is not throughput
        start = time.perf_counter()
        for _ in range(steps):
            next(iterator)
        seconds = time.perf_counter() - start
    return {
        "data": label,
        "image_size": image_size,
        "threads": threads,
        "img_per_s": steps * batch / seconds,
    }
