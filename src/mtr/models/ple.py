"""Progressive Layered Extraction (Tang et al., RecSys 2020): the frame's shared part is `ProgressiveExtraction`.

Each extraction level (a CGC layer) has task-specific experts for every task and shared experts.
Task t's gate mixes its own experts and the shared ones; below the last level a shared gate mixes all
experts into the shared experts' next input. Towers read each task's output of the last level.
All experts of a level are one batched matmul per layer, whatever the number of tasks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mtr.errors import InputError
from mtr.models.frame import FrameInputs, SharedPart
from mtr.models.layers import BatchedMLP, Gates, mix


class ExtractionLevel(nn.Module):
    """One CGC level: T * n_specific task experts and n_shared shared experts, evaluated together.

    Args:
        n_tasks: number of tasks.
        in_dim: width of the level's inputs.
        n_specific: experts per task.
        n_shared: shared experts.
        expert_hidden: widths of each expert MLP.
        shared_gate: whether to compute the shared output (every level but the last).
        dropout: dropout after expert activations.
    """

    def __init__(
        self,
        n_tasks: int,
        in_dim: int,
        n_specific: int,
        n_shared: int,
        expert_hidden: Sequence[int],
        shared_gate: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.n_tasks, self.n_specific, self.n_shared = n_tasks, n_specific, n_shared
        self.experts = BatchedMLP(n_tasks * n_specific + n_shared, in_dim, expert_hidden, dropout)
        self.task_gates = Gates(n_tasks, in_dim, n_specific + n_shared)
        self.shared_gate = Gates(1, in_dim, n_tasks * n_specific + n_shared) if shared_gate else None
        self.out_dim = self.experts.out_dim

    def forward(
        self, task_inputs: torch.Tensor, shared_input: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """Args: task_inputs: [T, B, D], or [B, D] at the first level where every input is the same;
        shared_input: [B, D].

        Returns:
            task outputs [T, B, H], shared output [B, H] (None at the last level), task gates
            [T, B, n_specific + n_shared] (own experts first) and the shared gate [B, all experts] or None.
        """
        t, s = self.n_tasks, self.n_specific
        if task_inputs.dim() == 2:
            experts = self.experts(task_inputs)  # [T*S + Sh, B, H], one input for all
        else:
            batch, width = shared_input.shape
            inputs = torch.cat(
                [task_inputs.repeat_interleave(s, dim=0), shared_input.expand(self.n_shared, batch, width)]
            )  # [T*S + Sh, B, D]: each expert reads its task's input, shared experts the shared one
            experts = self.experts(inputs)
        _, batch, hidden = experts.shape
        specific = experts[: t * s].view(t, s, batch, hidden)
        shared = experts[t * s :].unsqueeze(0).expand(t, self.n_shared, batch, hidden)
        task_gates = self.task_gates(task_inputs)  # [T, B, S + Sh]
        task_outputs = mix(task_gates, torch.cat([specific, shared], dim=1))  # [T, B, H]
        if self.shared_gate is None:
            return task_outputs, None, task_gates, None
        shared_gate = self.shared_gate(shared_input)  # [1, B, T*S + Sh]
        return task_outputs, mix(shared_gate, experts)[0], task_gates, shared_gate[0]


class ProgressiveExtraction(SharedPart):
    """PLE's shared part: stacked extraction levels; the first reads the features, each next one the
    previous level's outputs.

    Args:
        frame: the task names (gates are keyed by name), the features' width and the dropout after
            expert activations.
        n_levels: number of extraction levels.
        n_specific_experts: experts per task at each level.
        n_shared_experts: shared experts at each level.
        expert_hidden: widths of each expert MLP; the last is the expert output width.
    """

    def __init__(
        self,
        frame: FrameInputs,
        *,
        n_levels: int = 2,
        n_specific_experts: int = 2,
        n_shared_experts: int = 2,
        expert_hidden: Sequence[int] = (16,),
    ) -> None:
        super().__init__()
        n_specific, n_shared = n_specific_experts, n_shared_experts
        for name, value in (("n_levels", n_levels), ("n_specific_experts", n_specific), ("n_shared_experts", n_shared)):
            if value < 1:
                raise InputError(f"PLE: {name} must be at least 1, got {value}")
        self.task_names = frame.task_names
        levels = []
        width = frame.width
        for level in range(n_levels):
            last = level == n_levels - 1
            levels.append(
                ExtractionLevel(
                    len(self.task_names), width, n_specific, n_shared, expert_hidden, not last, frame.dropout
                )
            )
            width = levels[-1].out_dim
        self.levels = nn.ModuleList(levels)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Args: x: [B, D].

        Returns:
            each task's output of the last level [T, B, H], and gate weights keyed "level_{l}/{task}"
            ([B, own experts then shared experts]) and "level_{l}/shared" ([B, every task's experts in
            task order, then shared]).
        """
        task_inputs, shared_input = x, x
        gates: dict[str, torch.Tensor] = {}
        for level, extraction in enumerate(self.levels):
            task_inputs, shared_output, task_gates, shared_gate = extraction(task_inputs, shared_input)
            gates.update({f"level_{level}/{name}": task_gates[i] for i, name in enumerate(self.task_names)})
            if shared_output is not None and shared_gate is not None:
                shared_input = shared_output
                gates[f"level_{level}/shared"] = shared_gate
        return task_inputs, gates

    @property
    def last_shared_weight(self) -> torch.Tensor:
        """The last level's expert output layer (task-specific and shared experts are one tensor, so
        GradNorm measures there; a task's gradient reaches its own and the shared experts)."""
        return self.levels[-1].experts.last_weight
