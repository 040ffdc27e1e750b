"""The frame every architecture shares: feature arch -> shared part -> one tower per task.

An architecture is a `MultiTaskModel` whose `shared` part is what sets it apart: a shared bottom,
MMoE's gated experts, PLE's extraction levels, or the single-task baseline's per-task bottoms. The
frame owns everything else: the forward pass, gate weights for utilisation metrics, GradNorm's
reference layer and the output order (one column per schema task, in schema order).
"""

from __future__ import annotations

import torch
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from mtr.errors import InputError
from mtr.models.layers import FeatureArch, Towers


class SharedPart(nn.Module):
    """What sits between the feature arch and the towers; subclasses implement `forward`.

    Subclasses set `out_dim`, the width of each tower's input, and override `last_shared_weight`
    when some layer is shared by every task.
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


class MultiTaskModel(nn.Module):
    """Features, a shared part and one tower per task: raw outputs [B, n_tasks] in schema task order.

    Architectures build the features, then the shared part, then the towers: modules draw their initial
    weights from the global seed as they are built, so this order fixes what a seed gives.

    Args:
        features: sparse and dense features to [B, D] (or [T, B, D] per task).
        shared: the architecture's shared part, from the features to the towers' inputs.
        towers: one tower per schema task, reading `shared.out_dim` wide inputs.
    """

    def __init__(self, features: FeatureArch, shared: SharedPart, towers: Towers) -> None:
        super().__init__()
        if towers.in_dim != shared.out_dim:
            raise InputError(f"towers read width {towers.in_dim} but the shared part gives {shared.out_dim}")
        self.features = features
        self.shared = shared
        self.towers = towers

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
