"""From an architecture's raw outputs to predictions, by each task's objective kind.

An architecture returns one raw output per task. A binary objective's output is a logit and its
prediction the probability `sigmoid(logit)`; a continuous objective's output is the predicted value
itself. Training, scoring and the exported program all turn outputs into predictions here.
"""

from __future__ import annotations

import torch

from mtr.schema import DatasetSchema


def binary_tasks(schema: DatasetSchema) -> torch.Tensor:
    """[T] bool, True where the task's objective is binary (its output is a logit)."""
    kinds = {o.name: o.kind for o in schema.objective_table}
    return torch.tensor([kinds[t.objective] == "binary" for t in schema.tasks], dtype=torch.bool)


def task_predictions(outputs: torch.Tensor, binary: torch.Tensor) -> torch.Tensor:
    """[B, T] predictions of raw outputs [B, T]: probabilities of binary tasks, values of continuous ones.

    Args:
        outputs: [B, T] the architecture's outputs.
        binary: [T] bool from `binary_tasks`.
    """
    return torch.where(binary, torch.sigmoid(outputs), outputs)
