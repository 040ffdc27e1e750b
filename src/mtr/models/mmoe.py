"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018): the frame's shared part is `GatedExperts`.

Shared experts read the feature arch's output; each task has its own softmax gate over the experts
and its own tower on the gated mixture. Experts, gates and towers are each one batched matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtr.errors import InputError
from mtr.models.frame import FrameInputs, SharedPart
from mtr.models.layers import BatchedMLP, Gates, mix


class GatedExperts(SharedPart):
    """MMoE's shared part: experts shared by every task, mixed by one softmax gate per task.

    Args:
        frame: the task names (one gate each, keyed by name), the features' width and the dropout after
            the experts' hidden activations.
        n_experts: number of shared experts.
        expert_hidden: widths of each expert MLP; the last is the expert output width.
    """

    def __init__(self, frame: FrameInputs, *, n_experts: int = 8, expert_hidden: Sequence[int] = (16,)) -> None:
        super().__init__()
        if n_experts < 1:
            raise InputError(f"MMoE: n_experts must be at least 1, got {n_experts}")
        self.task_names = frame.task_names
        self.experts = BatchedMLP(n_experts, frame.width, expert_hidden, frame.dropout)
        self.gates = Gates(len(self.task_names), frame.width, n_experts)
        self.out_dim = self.experts.out_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [B, D]. Returns each task's mixture [T, B, H] and its gate weights [B, E] by task name."""
        experts = self.experts(x)  # [E, B, H]
        gates = self.gates(x)  # [T, B, E]
        return mix(gates, experts), {name: gates[i] for i, name in enumerate(self.task_names)}

    @property
    def last_shared_weight(self) -> torch.Tensor:
        """The experts' output layer [E, H_prev, H], the last layer every task shares."""
        return self.experts.last_weight
