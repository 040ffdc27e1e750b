"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

Shared experts read the feature arch's output; each task has its own softmax gate over the experts
and its own tower on the gated mixture. Experts, gates and towers are each one batched matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtr.errors import InputError
from mtr.models.frame import MultiTaskModel, SharedPart
from mtr.models.layers import BatchedMLP, FeatureArch, Gates, Towers, mix
from mtr.schema import DatasetSchema


class GatedExperts(SharedPart):
    """Experts shared by every task, mixed by one softmax gate per task.

    Args:
        task_names: the tasks in schema order; one gate each, keyed by name.
        in_dim: width of the features.
        n_experts: number of shared experts.
        expert_hidden: widths of each expert MLP; the last is the expert output width.
        dropout: dropout after the experts' hidden activations.
    """

    def __init__(
        self, task_names: Sequence[str], in_dim: int, n_experts: int, expert_hidden: Sequence[int], dropout: float
    ) -> None:
        super().__init__()
        if n_experts < 1:
            raise InputError(f"MMoE: n_experts must be at least 1, got {n_experts}")
        self.task_names = list(task_names)
        self.experts = BatchedMLP(n_experts, in_dim, expert_hidden, dropout)
        self.gates = Gates(len(self.task_names), in_dim, n_experts)
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


class MMoE(MultiTaskModel):
    """MMoE over the schema's features, one raw output per schema task.

    Args:
        schema: the dataset schema; tasks come out in `schema.tasks` order.
        embedding_dim: width of each sparse feature's embedding.
        dense_hidden: widths of the MLP over dense features (empty: dense features used as they are).
        n_experts: number of shared experts.
        expert_hidden: widths of each expert MLP; the last is the expert output width.
        tower_hidden: hidden widths of each task tower.
        dropout: dropout after hidden activations of experts and towers.
    """

    def __init__(
        self,
        schema: DatasetSchema,
        *,
        embedding_dim: int = 8,
        dense_hidden: Sequence[int] = (16,),
        n_experts: int = 8,
        expert_hidden: Sequence[int] = (16,),
        tower_hidden: Sequence[int] = (8,),
        dropout: float = 0.0,
    ) -> None:
        features = FeatureArch(schema, embedding_dim, dense_hidden)
        shared = GatedExperts(schema.task_names, features.out_dim, n_experts, expert_hidden, dropout)
        super().__init__(features, shared, Towers(len(schema.tasks), shared.out_dim, tower_hidden, dropout))
