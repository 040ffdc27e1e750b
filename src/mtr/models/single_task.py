"""The single-task baseline: one independent network per task (own embeddings, own MLP), all batched.

Nothing is shared, so comparing it with the multi-task models shows what sharing buys (or costs).
The per-task networks are still evaluated together: one EmbeddingBagCollection call whose tables hold
every task's embedding side by side, and one batched matmul per layer. Each task's network is its own
embeddings, its own bottom MLP (the frame's shared part, here shared by nothing) and a linear head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtr.models.frame import MultiTaskModel, SharedPart
from mtr.models.layers import BatchedMLP, FeatureArch, Towers
from mtr.schema import DatasetSchema


class PerTaskBottoms(SharedPart):
    """One MLP per task, each reading only its task's copy of the features.

    Args:
        n_tasks: number of tasks (and of bottoms).
        in_dim: width of each task's features.
        hidden: widths of each bottom; empty passes each task's features through unchanged.
        dropout: dropout after each hidden activation.
    """

    def __init__(self, n_tasks: int, in_dim: int, hidden: Sequence[int], dropout: float) -> None:
        super().__init__()
        self.bottoms = BatchedMLP(n_tasks, in_dim, hidden, dropout) if hidden else None
        self.out_dim = self.bottoms.out_dim if self.bottoms is not None else in_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [T, B, D], task t's features in slice t. Returns [T, B, H] and no gates."""
        return (self.bottoms(x) if self.bottoms is not None else x), {}


class SingleTask(MultiTaskModel):
    """One independent embedding + MLP network per schema task.

    Args:
        schema: the dataset schema; tasks come out in `schema.tasks` order.
        embedding_dim: width of each sparse feature's embedding, per task.
        dense_hidden: widths of each task's MLP over dense features (empty: used as they are).
        hidden: hidden widths of each task's network after the features.
        dropout: dropout after hidden activations.
    """

    def __init__(
        self,
        schema: DatasetSchema,
        *,
        embedding_dim: int = 8,
        dense_hidden: Sequence[int] = (16,),
        hidden: Sequence[int] = (64, 32),
        dropout: float = 0.0,
    ) -> None:
        n_tasks = len(schema.tasks)
        features = FeatureArch(schema, embedding_dim, dense_hidden, copies=n_tasks)
        shared = PerTaskBottoms(n_tasks, features.out_dim, hidden, dropout)
        # The bottoms end in `hidden[-1]` activations, so each task's head is one linear layer.
        super().__init__(features, shared, Towers(n_tasks, shared.out_dim, (), dropout))
