"""The one place that knows about devices: the mesh, shardings, multi-host set-up, host data ->
global arrays.

Data parallelism is plain `jax.jit` over a 1-D mesh axis `data`: the state is replicated, the batch
is split over every device of every process, and XLA inserts the all-reduces, so means over the
batch (losses, gradients, BatchNorm statistics) are over the global batch, exactly as on one device.
A sweep (`jaxgan.sweep`) stacks K runs on a leading axis over a 2-D mesh (`runs`, `data`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"
RUNS_AXIS = "runs"  # the run axis of a sweep


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Start multi-process JAX: explicit arguments, or auto-detected (Cloud TPU, SLURM) when none
    are given.

    On CPU the gloo collectives are selected first (XLA's CPU backend has no other cross-process
    ones).
    """
    if jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects the CPU backend
    jax.distributed.initialize(
        coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
    )


def multi_process_environment() -> bool:
    """True on a multi-host Cloud TPU slice, a SLURM job or an Open MPI launch of several tasks,
    where `jax.distributed.initialize()` finds coordinator and process ids by itself."""
    env = os.environ
    return (
        "," in env.get("TPU_WORKER_HOSTNAMES", "")
        or int(env.get("SLURM_NTASKS", "1")) > 1
        or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    )


def make_mesh(devices: list | None = None) -> Mesh:
    """A 1-D mesh over all global devices (or `devices`), ordered by process so that each process's
    devices hold a contiguous block of the global batch."""
    devices = devices if devices is not None else jax.devices()
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    devices, processes = mesh.shape[DATA_AXIS], jax.process_count()
    if batch_size % devices:
        raise ValueError(
            f"batch_size {batch_size} (the global batch) does not divide evenly over {devices} "
            f"devices in {processes} process(es); choose a multiple of {devices}"
        )


def process_rows(batch_size: int, mesh: Mesh) -> slice:
    """This process's rows of every global batch (its devices' contiguous block)."""
    local = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    per_device = batch_size // mesh.devices.size
    return slice(local[0] * per_device, (local[-1] + 1) * per_device)


def to_global(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows -> global arrays sharded over `data`, assembled from every process's
    rows."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def compile_step(step: Callable, mesh: Mesh, donate: bool = True) -> Callable:
    """`step(state, batch) -> (state, metrics)` compiled with the state replicated and the batch
    split."""
    return jax.jit(
        step,
        in_shardings=(replicated(mesh), batch_sharding(mesh)),
        out_shardings=(replicated(mesh), replicated(mesh)),
        donate_argnums=(0,) if donate else (),
    )


def make_sweep_mesh(num_runs: int, devices: list | None = None) -> Mesh:
    """A 2-D mesh (`runs`, `data`) for a sweep of `num_runs` runs: the run axis takes
    gcd(K, devices) devices, so that each device holds whole runs (no gradient crosses devices when
    K is a multiple of the device count), and each run's batch is split over the rest. On one device
    all K runs share it.

    Each process's devices form one rectangle of the mesh (`process_tiles`), so that the block of
    the stacked batches it loads (`process_block`) is one rectangle of (runs, rows) too."""
    devices = devices if devices is not None else jax.devices()
    runs = math.gcd(num_runs, len(devices))
    return Mesh(process_tiles(devices, runs, len(devices) // runs), (RUNS_AXIS, DATA_AXIS))


def process_tiles(devices: list, runs: int, data: int) -> np.ndarray:
    """The devices as a (runs, data) grid in which each process's L devices form one a x b
    rectangle.

    b = gcd(data, L) devices along `data` and a = L / b along `runs` (a divides `runs`, and the P
    tiles cover the grid exactly, whenever every process has L devices); processes fill the tiles in
    row-major order, each its devices (sorted by id) row-major. When L divides `data` or `data`
    divides L, this is the plain row-major grid of the devices sorted by (process, id), the mesh of
    a single process."""
    by_process: dict[int, list] = {}
    for device in sorted(devices, key=lambda d: (d.process_index, d.id)):
        by_process.setdefault(device.process_index, []).append(device)
    counts = {p: len(ds) for p, ds in by_process.items()}
    local = len(devices) // len(by_process)
    if set(counts.values()) != {local}:
        raise ValueError(
            f"a sweep mesh needs the same number of devices in every process; devices per process: "
            f"{counts}"
        )
    across = math.gcd(data, local)  # b
    down = local // across  # a
    grid = np.empty((runs, data), dtype=object)
    for tile, process_devices in enumerate(by_process.values()):
        row, column = divmod(tile, data // across)
        grid[row * down : (row + 1) * down, column * across : (column + 1) * across] = np.array(
            process_devices, dtype=object
        ).reshape(down, across)
    return grid


def runs_sharding(mesh: Mesh) -> NamedSharding:
    """Stacked per-run arrays (leading axis K) split over the run axis."""
    return NamedSharding(mesh, PartitionSpec(RUNS_AXIS))


def sweep_batch_sharding(mesh: Mesh) -> NamedSharding:
    """Stacked batches (K, B, ...): runs over `runs`, each run's batch over `data`."""
    return NamedSharding(mesh, PartitionSpec(RUNS_AXIS, DATA_AXIS))


def process_block(
    num_runs: int, batch_size: int, mesh: Mesh, process: int | None = None
) -> tuple[slice, slice]:
    """(runs, rows) of the stacked (K, B) batch that process `process`'s (default: this process's)
    devices hold under `sweep_batch_sharding`: the only data it loads. The device at mesh position
    (i, j) holds runs block i and rows block j; a process whose devices do not form one rectangle of
    the mesh is an error (its data would not be one block: `make_sweep_mesh` never makes such a
    mesh)."""
    process = jax.process_index() if process is None else process
    grid, (runs, data) = mesh.devices, (mesh.shape[RUNS_AXIS], mesh.shape[DATA_AXIS])
    if num_runs % runs or batch_size % data:
        raise ValueError(
            f"a sweep of {num_runs} runs with batch_size {batch_size} does not split evenly over "
            f"the mesh {dict(mesh.shape)}"
        )
    held = [(i, j) for i in range(runs) for j in range(data) if grid[i, j].process_index == process]
    if not held:
        raise ValueError(f"process {process} holds no device of the mesh {dict(mesh.shape)}")
    (first_run, first_row), (last_run, last_row) = (
        np.min(held, axis=0),
        np.max(held, axis=0),
    )  # mesh positions
    if len(held) != (last_run - first_run + 1) * (
        last_row - first_row + 1
    ):  # not its whole bounding box
        layout = {
            p: int(np.sum([d.process_index == p for d in grid.flat]))
            for p in sorted({d.process_index for d in grid.flat})
        }
        raise ValueError(
            f"sweep of {num_runs} runs on mesh {dict(mesh.shape)} over {len(layout)} processes "
            f"(devices per process {layout}): process {process}'s devices sit at mesh positions "
            f"{held}, not one rectangle, so its share of the stacked batches is not one block. "
            "Build the mesh with make_sweep_mesh, which gives each process of L devices a "
            "rectangle of L / gcd(data, L) (runs) x gcd(data, L) (data) devices"
        )
    per_run, per_row = num_runs // runs, batch_size // data
    return (
        slice(int(first_run) * per_run, (int(last_run) + 1) * per_run),
        slice(int(first_row) * per_row, (int(last_row) + 1) * per_row),
    )


def to_global_sweep(
    local_batch: dict[str, np.ndarray], mesh: Mesh, num_runs: int, batch_size: int
) -> dict[str, jax.Array]:
    """This process's block (`process_block`) of stacked batches -> global (K, B, ...) arrays."""
    sharding = sweep_batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, v, (num_runs, batch_size) + v.shape[2:])
        for k, v in local_batch.items()
    }


def describe(mesh: Mesh) -> str:
    """One start-up line: devices, processes and the mesh."""
    platform = mesh.devices.flat[0].platform
    return (
        f"{mesh.devices.size} {platform} device(s) in {jax.process_count()} process(es) "
        f"(this is process {jax.process_index()}, {jax.local_device_count()} local); "
        f"mesh {dict(mesh.shape)}"
    )


def check_replicas_agree(tree: Any, step: int) -> None:
    """Multi-process runs: every process's copy of the replicated `tree` must be identical (compared
    by a checksum of its bytes); a difference is an error, never silently checkpointed."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = hashlib.blake2b(digest_size=8)
    for leaf in jax.tree.leaves(tree):
        digest.update(np.ascontiguousarray(leaf.addressable_data(0)).tobytes())
    mine = np.frombuffer(digest.digest(), np.uint32)
    everyone = np.asarray(multihost_utils.process_allgather(mine)).reshape(jax.process_count(), -1)
    if not (everyone == everyone[0]).all():
        raise RuntimeError(
            f"step {step}: the processes' copies of the parameters differ (checksums "
            f"{[row.tobytes().hex() for row in everyone]}); not checkpointing a diverged run"
        )
