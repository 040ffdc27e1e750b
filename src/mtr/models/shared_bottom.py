"""Shared-Bottom (Caruana 1997): one network shared by all tasks, then one tower per task."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from mtr.errors import InputError
from mtr.models.layers import FeatureArch, Towers, mlp
from mtr.schema import DatasetSchema


class SharedBottom(nn.Module):
    """A shared MLP over the features feeding one tower per schema task.

    Args:
        schema: the dataset schema; tasks come out in `schema.tasks` order.
        embedding_dim: width of each sparse feature's embedding.
        dense_hidden: widths of the MLP over dense features (empty: dense features used as they are).
        bottom_hidden: widths of the shared bottom MLP (at least one layer).
        tower_hidden: hidden widths of each task tower.
        dropout: dropout after hidden activations of the bottom and the towers.
    """

    def __init__(
        self,
        schema: DatasetSchema,
        *,
        embedding_dim: int = 8,
        dense_hidden: Sequence[int] = (16,),
        bottom_hidden: Sequence[int] = (64, 32),
        tower_hidden: Sequence[int] = (16,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not bottom_hidden:
            raise InputError("SharedBottom: bottom_hidden must name at least one layer")
        self.features = FeatureArch(schema, embedding_dim, dense_hidden)
        self.bottom = mlp(self.features.out_dim, bottom_hidden, dropout)
        self.towers = Towers(len(schema.tasks), bottom_hidden[-1], tower_hidden, dropout)

    def forward(self, sparse: KeyedJaggedTensor, dense: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_tasks] in schema task order."""
        shared = self.bottom(self.features(sparse, dense))  # [B, H]
        return self.towers(shared)

    @property
    def last_shared_weight(self) -> torch.Tensor:
        """The bottom's last linear weight, the last layer every task shares (GradNorm's reference)."""
        return [layer for layer in self.bottom if isinstance(layer, nn.Linear)][-1].weight
