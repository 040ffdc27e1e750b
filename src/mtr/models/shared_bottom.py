"""Shared-Bottom (Caruana 1997): one network shared by all tasks, then one tower per task."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtr.errors import InputError
from mtr.models.frame import MultiTaskModel, SharedPart
from mtr.models.layers import FeatureArch, Towers, mlp
from mtr.schema import DatasetSchema


class SharedMLP(SharedPart):
    """One MLP every task reads.

    Args:
        in_dim: width of the features.
        hidden: widths of the MLP (at least one layer); the last is the towers' input width.
        dropout: dropout after each hidden activation.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], dropout: float) -> None:
        super().__init__()
        if not hidden:
            raise InputError("SharedBottom: bottom_hidden must name at least one layer")
        self.bottom = mlp(in_dim, hidden, dropout)
        self.out_dim = hidden[-1]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [B, D]. Returns the shared representation [B, H] and no gates."""
        return self.bottom(x), {}

    @property
    def last_shared_weight(self) -> torch.Tensor:
        """The bottom's last linear weight [H, H_prev]."""
        return [layer for layer in self.bottom if isinstance(layer, nn.Linear)][-1].weight


class SharedBottom(MultiTaskModel):
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
        features = FeatureArch(schema, embedding_dim, dense_hidden)
        shared = SharedMLP(features.out_dim, bottom_hidden, dropout)
        super().__init__(features, shared, Towers(len(schema.tasks), shared.out_dim, tower_hidden, dropout))
