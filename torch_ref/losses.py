"""The adversarial losses by name, as torch_ref/train.py applies them: the twin of
`jaxgan.losses.ADVERSARIAL`.

Each is three terms of D's outputs (the seed's D ends in a Sigmoid): D's loss on the real batch and
on the fake batch (back-propagated one after the other, as the seed's loop does) and G's loss.
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


def _bce(target: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The seed's nn.BCELoss of D's Sigmoid outputs against a constant label."""
    criterion = nn.BCELoss()
    return lambda output: criterion(output, torch.full_like(output, target))


ADVERSARIAL = {"bce": AdversarialLoss(real=_bce(1.0), fake=_bce(0.0), generator=_bce(1.0))}
