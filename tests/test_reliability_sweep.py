"""Sweep meshes on multi-process layouts: each process's devices form one rectangle of the (runs,
data) mesh, so the block of stacked batches it loads (`sharding.process_block`) is one block; other
layouts stop clearly.

No real processes: fake devices (a process index and an id) stand for P processes x L devices each.
"""

from __future__ import annotations

import dataclasses
import itertools
import re

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

from jaxgan import sharding


@dataclasses.dataclass(frozen=True)
class FakeDevice:
    """What the mesh functions read of a device."""

    process_index: int
    id: int


def fake_devices(processes: int, local: int) -> list[FakeDevice]:
    """P processes x L devices, listed out of order (the mesh functions must sort them)."""
    return [FakeDevice(p, p * local + i) for i in reversed(range(local)) for p in range(processes)]


def row_major_mesh(devices: list, num_runs: int) -> Mesh:
    """The mesh make_sweep_mesh made before process rectangles: devices by (process, id),
    row-major."""
    ordered = sorted(devices, key=lambda d: (d.process_index, d.id))
    runs = np.gcd(num_runs, len(ordered))
    return Mesh(
        np.array(ordered, dtype=object).reshape(runs, -1), (sharding.RUNS_AXIS, sharding.DATA_AXIS)
    )


def blocks(mesh: Mesh, processes: int, num_runs: int, batch_size: int) -> list[tuple[slice, slice]]:
    return [sharding.process_block(num_runs, batch_size, mesh, process=p) for p in range(processes)]


def test_three_processes_of_two_devices_with_a_sweep_of_two():
    """The issue's layout: mesh runs 2 x data 3; process p holds both runs' rows block p (a 2 x 1
    rectangle)."""
    mesh = sharding.make_sweep_mesh(2, fake_devices(3, 2))
    assert dict(mesh.shape) == {"runs": 2, "data": 3}
    assert [[d.process_index for d in row] for row in mesh.devices] == [[0, 1, 2], [0, 1, 2]]
    assert blocks(mesh, 3, 2, 6) == [
        (slice(0, 2), slice(0, 2)),
        (slice(0, 2), slice(2, 4)),
        (slice(0, 2), slice(4, 6)),
    ]


def test_the_row_major_layout_of_that_case_is_a_clear_error():
    """Process 1's devices of the old mesh straddle both rows ((0, 2) and (1, 0)): stop, naming the
    layout."""
    mesh = row_major_mesh(fake_devices(3, 2), 2)
    assert sharding.process_block(2, 6, mesh, process=0) == (
        slice(0, 1),
        slice(0, 4),
    )  # a rectangle: fine
    message = (
        "sweep of 2 runs on mesh {'runs': 2, 'data': 3} over 3 processes (devices per process "
        "{0: 2, 1: 2, 2: 2}): process 1's devices sit at mesh positions [(0, 2), (1, 0)], "
        "not one rectangle"
    )
    with pytest.raises(
        ValueError, match=re.escape(message) + ".*Build the mesh with make_sweep_mesh"
    ):
        sharding.process_block(2, 6, mesh, process=1)


@pytest.mark.parametrize(
    "processes, local", list(itertools.product((1, 2, 3, 4, 6), (1, 2, 3, 4, 8)))
)
def test_every_layout_gives_each_process_one_block_and_the_blocks_tile_the_batch(processes, local):
    """For every run count, the processes' blocks are disjoint and cover (K, B) exactly; where the
    old row-major mesh already gave rectangles (every single-process mesh among them), the mesh is
    unchanged."""
    devices = fake_devices(processes, local)
    for num_runs in range(1, 13):
        mesh = sharding.make_sweep_mesh(num_runs, devices)
        runs, data = mesh.shape["runs"], mesh.shape["data"]
        assert runs == np.gcd(num_runs, processes * local) and runs * data == processes * local
        batch_size = 2 * data
        covered = np.zeros((num_runs, batch_size), int)
        for p, (run_block, row_block) in enumerate(blocks(mesh, processes, num_runs, batch_size)):
            covered[run_block, row_block] += 1
            held = [d for row in mesh.devices for d in row if d.process_index == p]
            area = (run_block.stop - run_block.start) * (row_block.stop - row_block.start)
            assert area == len(held) * (num_runs // runs) * (
                batch_size // data
            )  # exactly its devices' shards
        assert (covered == 1).all(), (processes, local, num_runs)
        old = row_major_mesh(devices, num_runs)
        if local % data == 0 or data % local == 0:
            assert (old.devices == mesh.devices).all()
        else:
            with pytest.raises(ValueError, match="not one rectangle"):
                blocks(old, processes, num_runs, batch_size)


def test_processes_with_different_device_counts_are_a_clear_error():
    devices = fake_devices(2, 2) + [FakeDevice(1, 9)]
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the same number of devices in every process; devices per process: {0: 2, 1: 3}"
        ),
    ):
        sharding.make_sweep_mesh(3, devices)


def test_this_process_holds_the_whole_batch_of_a_single_process_mesh():
    """Real devices (one process): the default process, the whole (K, B) block, as jax's own
    sharding says."""
    mesh = sharding.make_sweep_mesh(3)
    assert sharding.process_block(3, 8, mesh) == (slice(0, 3), slice(0, 8))
    indices = sharding.sweep_batch_sharding(mesh).addressable_devices_indices_map((3, 8))
    assert len(indices) == jax.local_device_count() == mesh.devices.size
