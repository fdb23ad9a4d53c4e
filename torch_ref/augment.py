"""DiffAugment in PyTorch (NCHW), as Zhao et al.'s `DiffAugment_pytorch.py` computes it, on the
draws that `jaxgan.tasks.gan.augment.draws` makes on the host (so both frameworks augment
identically)."""

from __future__ import annotations

import torch

from jaxgan.tasks.gan.augment import (
    BRIGHTNESS,
    CONTRAST,
    CUTOUT_COL,
    CUTOUT_ROW,
    SATURATION,
    SHIFT_COLS,
    SHIFT_ROWS,
    cutout_size,
)


def diff_augment(
    images: torch.Tensor, draw: torch.Tensor, operations: tuple[str, ...]
) -> torch.Tensor:
    """Augment NCHW `images` with one draw per image (`draw`: (N, NUM_DRAWS)); differentiable in
    images."""
    if not operations:
        return images
    draw = draw.to(images.dtype)

    def factor(column: int) -> torch.Tensor:
        return draw[:, column].view(-1, 1, 1, 1)

    x = images  # (N, nc, S, S)
    if "color" in operations:
        x = x + (factor(BRIGHTNESS) - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (factor(SATURATION) * 2) + mean
        mean = x.mean(dim=[1, 2, 3], keepdim=True)
        x = (x - mean) * (factor(CONTRAST) + 0.5) + mean
    size = x.shape[2]
    if "translation" in operations:
        x = _shift(x, draw[:, SHIFT_ROWS].long(), dim=2)
        x = _shift(x, draw[:, SHIFT_COLS].long(), dim=3)
    if "cutout" in operations:
        cut, index = cutout_size(size), torch.arange(size, device=x.device)

        def inside(column: int) -> torch.Tensor:  # (N, S)
            start = draw[:, column].long().view(-1, 1) - cut // 2
            return (index >= start) & (index < start + cut)

        hole = inside(CUTOUT_ROW)[:, :, None] & inside(CUTOUT_COL)[:, None, :]  # (N, S, S)
        x = x * (~hole).unsqueeze(1).to(x.dtype)
    return x


def _shift(x: torch.Tensor, shift: torch.Tensor, dim: int) -> torch.Tensor:
    """out[n, :, i] = x[n, :, i + shift[n]] along `dim` (2 or 3), zero outside the image."""
    size = x.shape[dim]
    source = torch.arange(size, device=x.device).view(1, -1) + shift.view(-1, 1)  # (N, S)
    valid = (source >= 0) & (source < size)
    shape = [x.shape[0], 1, 1, 1]
    shape[dim] = size
    index = (
        source.clamp(0, size - 1)
        .view(shape)
        .expand(*[x.shape[d] if d != dim else size for d in range(4)])
    )
    taken = torch.gather(x, dim, index)
    return torch.where(valid.view(shape), taken, torch.zeros((), dtype=x.dtype, device=x.device))
