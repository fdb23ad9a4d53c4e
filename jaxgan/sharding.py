"""The one place that knows about devices: the mesh, shardings, multi-host set-up, host data -> global arrays.

Data parallelism is plain `jax.jit` over a 1-D mesh axis `data`: the state is replicated, the batch is
split over every device of every process, and XLA inserts the all-reduces, so means over the batch
(losses, gradients, BatchNorm statistics) are over the global batch, exactly as on one device.
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


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Start multi-process JAX: explicit arguments, or auto-detected (Cloud TPU, SLURM) when none are given.

    On CPU the gloo collectives are selected first (XLA's CPU backend has no other cross-process ones).
    """
    if jax.distributed.is_initialized():
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # only affects the CPU backend
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)


def multi_process_environment() -> bool:
    """True on a multi-host Cloud TPU slice, a SLURM job or an Open MPI launch of several tasks, where
    `jax.distributed.initialize()` finds coordinator and process ids by itself."""
    env = os.environ
    return ("," in env.get("TPU_WORKER_HOSTNAMES", "") or int(env.get("SLURM_NTASKS", "1")) > 1
            or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1)


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
        raise ValueError(f"batch_size {batch_size} (the global batch) does not divide evenly over {devices} devices "
                         f"in {processes} process(es); choose a multiple of {devices}")


def process_rows(batch_size: int, mesh: Mesh) -> slice:
    """This process's rows of every global batch (its devices' contiguous block)."""
    local = [i for i, d in enumerate(mesh.devices.flat) if d.process_index == jax.process_index()]
    per_device = batch_size // mesh.devices.size
    return slice(local[0] * per_device, (local[-1] + 1) * per_device)


def to_global(local_batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """This process's rows -> global arrays sharded over `data`, assembled from every process's rows."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
    return jax.device_put(tree, replicated(mesh))


def compile_step(step: Callable, mesh: Mesh, donate: bool = True) -> Callable:
    """`step(state, batch) -> (state, metrics)` compiled with the state replicated and the batch split."""
    return jax.jit(step, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                   out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=(0,) if donate else ())


def make_sweep_mesh(num_runs: int, devices: list | None = None) -> Mesh:
    """A 2-D mesh (`runs`, `data`) for a sweep of `num_runs` runs: the run axis takes gcd(K, devices) devices,
    so that each device holds whole runs (no gradient crosses devices when K is a multiple of the device
    count), and each run's batch is split over the rest. On one device all K runs share it."""
    devices = devices if devices is not None else jax.devices()
    devices = sorted(devices, key=lambda d: (d.process_index, d.id))
    runs = math.gcd(num_runs, len(devices))
    return Mesh(np.array(devices).reshape(runs, len(devices) // runs), (RUNS_AXIS, DATA_AXIS))


def runs_sharding(mesh: Mesh) -> NamedSharding:
    """Stacked per-run arrays (leading axis K) split over the run axis."""
    return NamedSharding(mesh, PartitionSpec(RUNS_AXIS))


def sweep_batch_sharding(mesh: Mesh) -> NamedSharding:
    """Stacked batches (K, B, ...): runs over `runs`, each run's batch over `data`."""
    return NamedSharding(mesh, PartitionSpec(RUNS_AXIS, DATA_AXIS))


def process_block(num_runs: int, batch_size: int, mesh: Mesh) -> tuple[slice, slice]:
    """(runs, rows) of the stacked (K, B) batch that this process's devices hold: the only data it loads."""
    indices = sweep_batch_sharding(mesh).addressable_devices_indices_map((num_runs, batch_size)).values()
    runs = [index[0].indices(num_runs) for index in indices]
    rows = [index[1].indices(batch_size) for index in indices]
    return (slice(min(r[0] for r in runs), max(r[1] for r in runs)),
            slice(min(r[0] for r in rows), max(r[1] for r in rows)))


def to_global_sweep(local_batch: dict[str, np.ndarray], mesh: Mesh, num_runs: int,
                    batch_size: int) -> dict[str, jax.Array]:
    """This process's block (`process_block`) of stacked batches -> global (K, B, ...) arrays."""
    sharding = sweep_batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v, (num_runs, batch_size) + v.shape[2:])
            for k, v in local_batch.items()}


def describe(mesh: Mesh) -> str:
    """One start-up line: devices, processes and the mesh."""
    platform = mesh.devices.flat[0].platform
    return (f"{mesh.devices.size} {platform} device(s) in {jax.process_count()} process(es) "
            f"(this is process {jax.process_index()}, {jax.local_device_count()} local); "
            f"mesh {dict(mesh.shape)}")


def check_replicas_agree(tree: Any, step: int) -> None:
    """Multi-process runs: every process's copy of the replicated `tree` must be identical (compared by
    a checksum of its bytes); a difference is an error, never silently checkpointed."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    digest = hashlib.blake2b(digest_size=8)
    for leaf in jax.tree.leaves(tree):
        digest.update(np.ascontiguousarray(leaf.addressable_data(0)).tobytes())
    mine = np.frombuffer(digest.digest(), np.uint32)
    everyone = np.asarray(multihost_utils.process_allgather(mine)).reshape(jax.process_count(), -1)
    if not (everyone == everyone[0]).all():
        raise RuntimeError(f"step {step}: the processes' copies of the parameters differ (checksums "
                           f"{[row.tobytes().hex() for row in everyone]}); not checkpointing a diverged run")
