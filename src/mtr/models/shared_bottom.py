"""Shared-Bottom (Caruana 1997): one network shared by all tasks, then one tower per task.

The frame's shared part is `SharedMLP`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtr.errors import InputError
from mtr.models.frame import FrameInputs, SharedPart
from mtr.models.layers import mlp


class SharedMLP(SharedPart):
    """Shared-Bottom's shared part: one MLP every task reads.

    Args:
        frame: the features' width and the dropout after each hidden activation (every task reads the
            same bottom, so the task names are not used).
        hidden: widths of the MLP (at least one layer); the last is the towers' input width.
    """

    def __init__(self, frame: FrameInputs, *, hidden: Sequence[int] = (64, 32)) -> None:
        super().__init__()
        if not hidden:
            raise InputError("SharedMLP: hidden must name at least one layer")
        self.bottom = mlp(frame.width, hidden, frame.dropout)
        self.out_dim = hidden[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [B, D]. Returns the shared representation [B, H] and no gates."""
        return self.bottom(x), {}

    @property
    def last_shared_weight(self) -> torch.Tensor:
        """The bottom's last linear weight [H, H_prev]."""
        return [layer for layer in self.bottom if isinstance(layer, nn.Linear)][-1].weight
