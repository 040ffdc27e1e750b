"""The frame every architecture shares: feature arch -> shared part -> one tower per task.

An architecture is one `MultiTaskModel` whose `shared` part is what sets it apart: a shared bottom,
MMoE's gated experts, PLE's extraction levels, or the single-task baseline's per-task bottoms. The
frame owns everything else: its hyperparameters (embedding width, dense MLP, towers, dropout), the
forward pass, gate weights for utilisation metrics, GradNorm's reference layer and the output order
(one column per schema task, in schema order). A config names the shared part as a nested class:

    architecture:
      class_path: mtr.models.frame.MultiTaskModel
      init_args:
        embedding_dim: 8
        shared: {class_path: mtr.models.mmoe.GatedExperts, init_args: {n_experts: 8}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from mtr.errors import InputError
from mtr.models.layers import FeatureArch, Towers
from mtr.schema import DatasetSchema


@dataclass(frozen=True)
class FrameInputs:
    """What the frame gives its shared part, so that a config names only the part's own hyperparameters.

    Args:
        task_names: the schema's tasks in order (one gate or bottom each, where the part has them).
        width: width of the features the part reads.
        dropout: the frame's dropout, applied after the part's hidden activations as in the towers.
    """

    task_names: tuple[str, ...]
    width: int
    dropout: float


class SharedPart(nn.Module):
    """What sits between the feature arch and the towers; subclasses implement `forward`.

    Subclasses take the `FrameInputs` first, then their own hyperparameters as keywords; they set
    `out_dim`, the width of each tower's input, and override `last_shared_weight` when some layer is
    shared by every task.
    """

    out_dim: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: features [B, D], or [T, B, D] when the feature arch gives each task its own copy.

        Returns:
            tower inputs, [B, H] shared by every tower or [T, B, H] one per task, and gate weights
            [B, n_experts] keyed by gate name (empty for parts without gates).
        """
        raise NotImplementedError

    @property
    def last_shared_weight(self) -> torch.Tensor | None:
        """The last layer every task shares (GradNorm's reference), or None when nothing is shared."""
        return None


SharedPartBuilder = Callable[[FrameInputs], SharedPart]
"""Builds a shared part from what the frame gives it (a SharedPart class with its hyperparameters bound)."""


class MultiTaskModel(nn.Module):
    """Features, a shared part and one tower per task: raw outputs [B, n_tasks] in schema task order.

    The frame builds the features, then the shared part, then the towers: modules draw their initial
    weights from the global seed as they are built, so this order fixes what a seed gives.

    Args:
        schema: the dataset schema; tasks come out in `schema.tasks` order.
        shared: builds the shared part, e.g. `functools.partial(GatedExperts, n_experts=4)`.
        embedding_dim: width of each sparse feature's embedding.
        dense_hidden: widths of the MLP over dense features (empty: dense features used as they are).
        tower_hidden: hidden widths of each task tower (empty: each tower is one linear layer).
        dropout: dropout after hidden activations of the shared part and the towers.
        features_per_task: give each task its own embeddings and dense MLP (the single-task baseline),
            so the shared part reads [T, B, D].
    """

    def __init__(
        self,
        schema: DatasetSchema,
        shared: SharedPartBuilder,
        *,
        embedding_dim: int = 8,
        dense_hidden: Sequence[int] = (16,),
        tower_hidden: Sequence[int] = (8,),
        dropout: float = 0.0,
        features_per_task: bool = False,
    ) -> None:
        super().__init__()
        n_tasks = len(schema.tasks)
        self.features = FeatureArch(schema, embedding_dim, dense_hidden, copies=n_tasks if features_per_task else 1)
        self.shared = shared(FrameInputs(tuple(schema.task_names), self.features.out_dim, dropout))
        if not isinstance(self.shared, SharedPart):
            raise InputError(f"architecture: shared must build a SharedPart, got {type(self.shared).__name__}")
        self.towers = Towers(n_tasks, self.shared.out_dim, tower_hidden, dropout)

    def forward_with_gates(
        self, sparse: KeyedJaggedTensor, dense: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Raw outputs [B, n_tasks] and gate weights [B, n_experts] keyed by gate name (empty without gates).

        Args:
            sparse: one id per sparse feature and row.
            dense: [B, n_dense] dense features.
        """
        tower_inputs, gates = self.shared(self.features(sparse, dense))  # [B, H] or [T, B, H]
        return self.towers(tower_inputs), gates

    def forward(self, sparse: KeyedJaggedTensor, dense: torch.Tensor) -> torch.Tensor:
        """Raw outputs [B, n_tasks] in schema task order (sparse ids per feature, dense [B, n_dense])."""
        return self.forward_with_gates(sparse, dense)[0]

    @property
    def last_shared_weight(self) -> torch.Tensor | None:
        """The shared part's last layer every task shares (GradNorm's reference); None if there is none."""
        return self.shared.last_shared_weight
