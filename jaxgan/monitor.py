"""What the user sees: a progress bar, concise log lines, TensorBoard event files and PNG sample
grids.

TensorBoard files are written with tensorboardX (no TensorFlow). Only process 0 writes anything.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from jaxgan.atomic import atomic_path


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """(N, H, W, C) float in [-1, 1] -> one uint8 (rows*H', cols*W', C) grid, as torchvision's
    make_grid."""
    count, height, width, channels = images.shape
    columns = columns or min(count, max(1, int(math.ceil(math.sqrt(count)))))
    rows = int(math.ceil(count / columns))
    grid = np.zeros(
        (rows * (height + padding) + padding, columns * (width + padding) + padding, channels),
        np.uint8,
    )
    pixels = np.round((np.clip(np.asarray(images, np.float32), -1, 1) + 1) * 127.5).astype(np.uint8)
    for i, image in enumerate(pixels):
        top, left = (
            padding + (i // columns) * (height + padding),
            padding + (i % columns) * (width + padding),
        )
        grid[top : top + height, left : left + width] = image
    return grid


def save_png(pixels: np.ndarray, path: str | os.PathLike) -> None:
    """uint8 HWC (C = 1 or 3) or uint16 HW1 -> PNG, written atomically."""
    array = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    with atomic_path(path) as temporary:
        Image.fromarray(array).save(temporary, format="PNG")


class Monitor:
    """Progress bar, log lines, TensorBoard scalars/images and sample PNGs under the workdir."""

    def __init__(
        self,
        workdir: str | os.PathLike,
        start: int,
        total: int,
        enabled: bool = True,
        hparams: dict[str, Any] | None = None,
        progress: bool = True,
    ):
        self.enabled, self.workdir = enabled, Path(workdir)
        self.writer = self.bar = None
        if not enabled:
            return
        from tensorboardX import SummaryWriter
        from tqdm import tqdm

        self.writer = SummaryWriter(
            str(self.workdir / "tensorboard"), purge_step=start if start else None
        )
        if (
            hparams and not start
        ):  # the config as TensorBoard hyperparameters (HParams tab) and as a table
            from tensorboardX.summary import hparams as hparams_summary

            for summary in hparams_summary(hparams, {"loss/g": 0.0, "loss/d": 0.0}):
                self.writer.file_writer.add_summary(summary)
            rows = "\n".join(f"| {k} | {v} |" for k, v in hparams.items())
            self.writer.add_text("config", "| field | value |\n|---|---|\n" + rows, 0)
        if progress:  # a sweep shows one bar for all its runs
            self.bar = tqdm(
                total=total, initial=start, unit="step", dynamic_ncols=True, smoothing=0.1
            )

    def advance(self, steps: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(steps)

    def log(self, step: int, scalars: dict[str, float], line: str | None = None) -> None:
        """Scalars to TensorBoard and, at full precision, to metrics.jsonl (one JSON object per
        line; after a resume a step may appear twice: the later line is the resumed run's)."""
        if not self.enabled:
            return
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)
        with open(self.workdir / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps({"step": step, **scalars}) + "\n")
        if self.bar is not None:
            shown = {
                k.split("/")[-1]: f"{v:.3g}" for k, v in scalars.items() if k.startswith("loss/")
            }
            self.bar.set_postfix(shown, refresh=False)
        if line:
            self.write(line)

    def images(self, step: int, grid: np.ndarray, name: str = "samples") -> Path | None:
        """Write a uint8 grid to samples/NAME_STEP.png and TensorBoard."""
        if not self.enabled:
            return None
        path = self.workdir / "samples" / f"{name}_{step:07d}.png"
        save_png(grid, path)
        self.writer.add_image(name, grid, step, dataformats="HWC")
        return path

    def write(self, line: str) -> None:
        if self.enabled:
            (self.bar.write if self.bar is not None else print)(line)

    def close(self) -> None:
        if self.enabled:
            if self.bar is not None:
                self.bar.close()
            self.writer.close()
