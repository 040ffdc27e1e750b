"""The serving program: the trained architecture and the score fusion as one module over plain tensors.

`ScoringProgram` is what `mtr export` traces with `torch.export`. Its inputs are plain tensors for a batch
of B candidates, so the batch size is dynamic and a C++ or Python caller needs no TorchRec objects:

    sparse_ids [B, n_sparse] int64   ids from `encode_features` (schema sparse feature order)
    dense      [B, n_dense] float32  from `encode_features` (schema dense feature order)
    channel    [B] int64             channel code of each candidate (`mtr.scoring.groups.CHANNEL_CODES`)
    baseline   [B] int64             batch position of the candidate's opportunity's "none" candidate
    value      [B] float32           the value that scales value-scaled objectives (ones when unused)

and its outputs are every task's prediction [B, n_tasks] (the probability of a binary task, the value of a
continuous one) and the ranking score [B].

The score is `mtr.scoring.fusion`'s formula, computed by its torch twin `TorchFusion`: a send is scored
relative to sending nothing at the same opportunity, so the baseline terms are the model's predictions on
the opportunity's own "none" row (the row whose features say channel = none), exactly as `fusion.fuse`
reads them from the group's first candidate. The KeyedJaggedTensor the architecture expects is built
inside the program from the id matrix, with the same layout as the DataModule's `sparse_batch`, so the
architecture's own forward runs. The policy (threshold, temperature) is not part of the program: `mtr score`
applies it to the scores with `mtr.scoring.policy.decide`, as the manifest records.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from mtr.data.batch import sparse_batch
from mtr.models.outputs import binary_tasks, task_predictions
from mtr.schema import DatasetSchema
from mtr.scoring.candidates import channel_task_index
from mtr.scoring.fusion import TorchFusion
from mtr.scoring.weights import FusionWeights

INPUT_NAMES = ("sparse_ids", "dense", "channel", "baseline", "value")
OUTPUT_NAMES = ("probabilities", "score")
MAX_BATCH = 1 << 24  # upper bound of the dynamic batch dimension


class ScoringProgram(nn.Module):
    """Architecture + fusion: (sparse ids, dense, channel, baseline, value) -> (predictions, score).

    Args:
        model: the architecture, forward(sparse KJT, dense [B, D]) -> outputs [B, n_tasks].
        schema: its dataset schema (feature order, tasks, objective table); must have every objective on
            every send channel.
        fusion: the fusion weights of the chosen operating point.
    """

    def __init__(self, model: nn.Module, schema: DatasetSchema, fusion: FusionWeights) -> None:
        super().__init__()
        self.model = model.eval()
        self.sparse_keys = [f.name for f in schema.sparse_features]
        task = torch.from_numpy(channel_task_index(schema))  # [4 channel codes, K objectives], -1: none
        # Buffers, not Python constants: they are saved as plain tensors in the .pt2 archive.
        self.register_buffer("task_index", task.clamp(min=0))
        self.register_buffer("task_present", (task >= 0).float())
        self.register_buffer("binary", binary_tasks(schema))
        self.fusion = TorchFusion(schema.objective_table, fusion)

    def forward(
        self,
        sparse_ids: torch.Tensor,
        dense: torch.Tensor,
        channel: torch.Tensor,
        baseline: torch.Tensor,
        value: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns task predictions [B, n_tasks] and scores [B] (exactly 0 on "none" candidates)."""
        sparse = sparse_batch(self.sparse_keys, sparse_ids) if self.sparse_keys else None
        predictions = task_predictions(self.model(sparse, dense), self.binary)  # [B, T]
        # Each candidate's objectives (table order) on its own channel: [B, K].
        own = predictions.gather(1, self.task_index[channel]) * self.task_present[channel]
        return predictions, self.fusion(own, channel, baseline, value)


def example_inputs(schema: DatasetSchema, batch: int = 8) -> tuple[torch.Tensor, ...]:
    """Inputs of `batch` candidates in the program's input order (ids 0, zeros, all "none" baselines)."""
    return (
        torch.zeros(batch, len(schema.sparse_features), dtype=torch.int64),
        torch.zeros(batch, len(schema.dense_features), dtype=torch.float32),
        torch.zeros(batch, dtype=torch.int64),
        torch.arange(batch, dtype=torch.int64),
        torch.ones(batch, dtype=torch.float32),
    )


def export_program(program: ScoringProgram, schema: DatasetSchema) -> torch.export.ExportedProgram:
    """`torch.export` (non-strict) of the program with a dynamic batch dimension on every input."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    dynamic = tuple({0: batch} for _ in INPUT_NAMES)
    with torch.no_grad():
        return torch.export.export(program, example_inputs(schema), dynamic_shapes=dynamic, strict=False)


def save_program(exported: torch.export.ExportedProgram, path: Path) -> None:
    """Save without the example inputs: `torch.export.load` would unpickle them, so the archive holds none."""
    examples = exported.example_inputs
    exported.example_inputs = None
    try:
        torch.export.save(exported, path)
    finally:
        exported.example_inputs = examples
