"""Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

Shared experts read the feature arch's output; each task has its own softmax gate over the experts
and its own tower on the gated mixture. Experts, gates and towers are each one batched matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from mtr.errors import InputError
from mtr.models.layers import BatchedMLP, FeatureArch, Gates, Towers, mix
from mtr.schema import DatasetSchema


class MMoE(nn.Module):
    """MMoE over the schema's features, one logit per schema task.

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
        super().__init__()
        if n_experts < 1:
            raise InputError(f"MMoE: n_experts must be at least 1, got {n_experts}")
        self.task_names = schema.task_names
        self.features = FeatureArch(schema, embedding_dim, dense_hidden)
        self.experts = BatchedMLP(n_experts, self.features.out_dim, expert_hidden, dropout)
        self.gates = Gates(len(self.task_names), self.features.out_dim, n_experts)
        self.towers = Towers(len(self.task_names), self.experts.out_dim, tower_hidden, dropout)

    def forward_with_gates(
        self, sparse: KeyedJaggedTensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits [B, n_tasks] and each task's gate weights [B, n_experts] keyed by task name."""
        x = self.features(sparse, dense)  # [B, D]
        experts = self.experts(x)  # [E, B, H]
        gates = self.gates(x)  # [T, B, E]
        logits = self.towers(mix(gates, experts))  # [B, T]
        return logits, {name: gates[i] for i, name in enumerate(self.task_names)}

    def forward(self, sparse: KeyedJaggedTensor, dense: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_tasks] in schema task order."""
        return self.forward_with_gates(sparse, dense)[0]

    @property
    def last_shared_weight(self) -> torch.Tensor:
        """The experts' output layer, the last layer every task shares (GradNorm's reference)."""
        return self.experts.last_weight
