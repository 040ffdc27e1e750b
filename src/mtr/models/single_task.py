"""The single-task baseline: one independent network per task (own embeddings, own MLP), all batched.

Nothing is shared, so comparing it with the multi-task models shows what sharing buys (or costs).
The per-task networks are still evaluated together: one EmbeddingBagCollection call whose tables hold
every task's embedding side by side, and one batched matmul per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from mtr.models.layers import FeatureArch, Towers
from mtr.schema import DatasetSchema


class SingleTask(nn.Module):
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
        super().__init__()
        n_tasks = len(schema.tasks)
        self.features = FeatureArch(schema, embedding_dim, dense_hidden, copies=n_tasks)
        self.networks = Towers(n_tasks, self.features.out_dim, hidden, dropout)

    def forward(self, sparse: KeyedJaggedTensor, dense: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_tasks] in schema task order."""
        per_task = self.features(sparse, dense)  # [T, B, D]: task t reads only its own embeddings
        return self.networks(per_task)
