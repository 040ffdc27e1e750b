"""The single-task baseline: one independent network per task (own embeddings, own MLP), all batched.

Nothing is shared, so comparing it with the multi-task models shows what sharing buys (or costs).
The per-task networks are still evaluated together: one EmbeddingBagCollection call whose tables hold
every task's embedding side by side, and one batched matmul per layer. Each task's network is its own
embeddings, its own bottom MLP (the frame's shared part, here shared by nothing) and a linear head:
the frame with `features_per_task: true`, `tower_hidden: []` and `PerTaskBottoms` as its shared part.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtr.models.frame import FrameInputs, SharedPart
from mtr.models.layers import BatchedMLP


class PerTaskBottoms(SharedPart):
    """One MLP per task, each reading its task's copy of the features (or, without the frame's
    `features_per_task`, every task's bottom reads the same features).

    Args:
        frame: the task names (one bottom each), the width of each task's features and the dropout
            after each hidden activation.
        hidden: widths of each bottom; empty passes each task's features through unchanged.
    """

    def __init__(self, frame: FrameInputs, *, hidden: Sequence[int] = (64, 32)) -> None:
        super().__init__()
        self.bottoms = BatchedMLP(len(frame.task_names), frame.width, hidden, frame.dropout) if hidden else None
        self.out_dim = self.bottoms.out_dim if self.bottoms is not None else frame.width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [T, B, D], task t's features in slice t (or [B, D] for all). Returns [T, B, H] and no gates."""
        return (self.bottoms(x) if self.bottoms is not None else x), {}
