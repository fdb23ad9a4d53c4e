"""Tasks as plug-ins over one training loop: `gan` (G and D) and `restore` (R and D)."""

from __future__ import annotations

import importlib

from jaxgan.tasks.base import Task

TASK_MODULES = {"gan": "jaxgan.tasks.gan", "restore": "jaxgan.tasks.restore"}


def get_task(name: str) -> Task:
    """The task called `name` (its package defines TASK)."""
    if name not in TASK_MODULES:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASK_MODULES)}")
    return importlib.import_module(TASK_MODULES[name]).TASK
