"""The adversarial losses by name, as torch_ref/train.py applies them: the twin of
`jaxgan.losses.ADVERSARIAL`.

Each is three terms of D's output: D's loss on the real batch and on the fake batch (back-propagated
one after the other, as the seed's loop does) and G's loss. The seed's BCE takes the seed's D as it
is (ending in a Sigmoid: probabilities); the others take D's logits (`logits`: the same D without
its last Sigmoid).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn


class AdversarialLoss(NamedTuple):
    real: Callable[[torch.Tensor], torch.Tensor]  # D's loss on the real batch
    fake: Callable[[torch.Tensor], torch.Tensor]  # D's loss on the fake batch
    generator: Callable[[torch.Tensor], torch.Tensor]  # G's loss on the fake batch
    on_logits: bool = True  # False: the terms take the seed's Sigmoid outputs


def _bce(target: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The seed's nn.BCELoss of D's Sigmoid outputs against a constant label."""
    criterion = nn.BCELoss()
    return lambda output: criterion(output, torch.full_like(output, target))


def logits(
    discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """D's output before its last Sigmoid: (N,) logits (`labels` for a projection D)."""
    return discriminator.logits(images, labels)


ADVERSARIAL = {
    "bce": AdversarialLoss(real=_bce(1.0), fake=_bce(0.0), generator=_bce(1.0), on_logits=False),
    "hinge": AdversarialLoss(
        real=lambda x: torch.relu(1 - x).mean(),
        fake=lambda x: torch.relu(1 + x).mean(),
        generator=lambda x: -x.mean(),
    ),
    "least_squares": AdversarialLoss(
        real=lambda x: ((x - 1) ** 2).mean() / 2,
        fake=lambda x: (x**2).mean() / 2,
        generator=lambda x: ((x - 1) ** 2).mean() / 2,
    ),
    "wasserstein": AdversarialLoss(
        real=lambda x: -x.mean(), fake=lambda x: x.mean(), generator=lambda x: -x.mean()
    ),
}
