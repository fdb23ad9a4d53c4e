"""Training checkpoints with orbax: the states of a workdir's `checkpoints/STEP/`.

orbax writes each checkpoint into a temporary folder and renames it when complete, so a checkpoint
cut off by a kill is never listed nor loaded. The workdir's record is `jaxgan.run_info` (run.json);
single models (the converter's output) are `jaxgan.model_folder`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

# 3: the settings hold the penalty weights (r1_gamma, gradient_penalty) too. 2: the state's models
# by role, each with its mutable collections (`jaxgan.state`); 1: fields `generator` (G or R) and
# `discriminator`, each with `batch_stats`. 1 and 2 are read and migrated on restore.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
SETTINGS_BEFORE_3 = ("ema_decay", "lambda_rec", "lambda_adv")


class CheckpointError(ValueError):
    """A checkpoint or workdir that cannot be used as asked; the message names the path."""


def check_format(info: dict, path: Path) -> None:
    version = info.get("format_version")
    if version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: checkpoint format version {version}, but this jaxgan reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}; use the jaxgan release that wrote it (see "
            "'versions' in the file)"
        )


class Checkpoints:
    """The training checkpoints of a workdir: asynchronous saves, the last `keep` kept."""

    def __init__(self, workdir: str | os.PathLike, keep: int = 3, async_save: bool = True):
        self.directory = Path(workdir).absolute() / "checkpoints"
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        meta = {"format_version": FORMAT_VERSION, "step": int(step), **meta}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )

    def restore(
        self, step: int, abstract_state: Any, settings: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """The state at `step`, placed as `abstract_state`'s shardings say (any device count); a
        format-1 checkpoint is read in its own layout and migrated, and a checkpoint from before
        format 3 takes the settings it did not save from `settings` (the run's, from its
        config)."""
        meta = self.meta(step)
        target = abstract_state
        if meta["format_version"] < 3:
            target = abstract_state.replace(
                settings={k: abstract_state.settings[k] for k in SETTINGS_BEFORE_3}
            )
        if meta["format_version"] == 1:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardRestore(layout_v1(target))),
            )
            state = from_layout_v1(restored.state, target)
        else:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target))
            )
            state = restored.state
        if meta["format_version"] < 3:
            if settings is None:
                raise CheckpointError(
                    f"{self.directory / str(step)}: format {meta['format_version']} holds no "
                    f"{', '.join(sorted(set(abstract_state.settings) - set(SETTINGS_BEFORE_3)))}; "
                    "restore it with the run's settings"
                )
            missing = {k: v for k, v in settings.items() if k not in SETTINGS_BEFORE_3}
            placed = {
                k: jax.device_put(v, abstract_state.settings[k].sharding)
                for k, v in missing.items()
            }
            state = state.replace(settings={**state.settings, **placed})
        return state, meta

    def meta(self, step: int) -> dict[str, Any]:
        """The JSON record saved beside the state at `step` (format version, data position, ...)."""
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        check_format(meta, self.directory / str(step))
        return meta

    def saved_models(self, step: int) -> set[str]:
        """The names of the models checkpoint `step` holds (format 1: `generator` for G or R)."""
        metadata = ocp.StandardCheckpointer().metadata(self.directory / str(step) / "state")
        tree = metadata.item_metadata
        return (
            set(tree["models"]) if "models" in tree else set(tree) & {"generator", "discriminator"}
        )

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()


def layout_v1(state: Any) -> dict[str, Any]:
    """A TrainState (or its abstract twin) in format 1's layout: the trained model as
    `generator`."""
    trained = next(role for role in state.models if role != "discriminator")

    def model(role: str) -> dict[str, Any]:
        model_state = state.models[role]
        return {
            "params": model_state.params,
            "batch_stats": model_state.collections["batch_stats"],
            "opt_state": model_state.opt_state,
        }

    return {
        "step": state.step,
        "generator": model(trained),
        "discriminator": model("discriminator"),
        "ema_params": state.ema_params,
        "settings": state.settings,
        "rng": state.rng,
    }


def from_layout_v1(tree: dict[str, Any], like: Any) -> Any:
    """Format 1's layout -> a TrainState with `like`'s structure (the inverse of `layout_v1`)."""
    trained = next(role for role in like.models if role != "discriminator")
    models = {
        role: like.models[role].replace(
            params=tree[old]["params"],
            collections={"batch_stats": tree[old]["batch_stats"]},
            opt_state=tree[old]["opt_state"],
        )
        for role, old in ((trained, "generator"), ("discriminator", "discriminator"))
    }
    return like.replace(
        step=tree["step"],
        models=models,
        ema_params=tree["ema_params"],
        settings=tree["settings"],
        rng=tree["rng"],
    )


def abstract_like(tree: Any, sharding: jax.sharding.Sharding) -> Any:
    """Shape/dtype structs of `tree` (arrays or structs) placed with `sharding`, as a restore
    target."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
