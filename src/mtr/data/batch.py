"""One batch of model inputs and targets, and the KeyedJaggedTensor layout of sparse ids.

Shared by the DataModule (training), the candidate scorer and the exported serving program, so that the
three build the architecture's sparse input the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor


@dataclass
class Batch:
    """One batch of rows.

    Attributes:
        sparse: one id per sparse feature and row, keyed by feature name.
        dense: [B, n_dense] float32.
        labels: [B, n_tasks] float32, 0 where masked.
        masks: [B, n_tasks] float32, 1 where the task has a label.
        propensity: [B] float32, the logging policy's probability of the logged action (1 if unknown).
        row_id: [B] int64, the dataset's row key.
    """

    sparse: KeyedJaggedTensor
    dense: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    propensity: torch.Tensor
    row_id: torch.Tensor

    def __len__(self) -> int:
        return self.dense.shape[0]


def sparse_batch(keys: list[str], ids: torch.Tensor) -> KeyedJaggedTensor:
    """A KeyedJaggedTensor with one id per key and row from an [B, n_keys] id matrix."""
    batch_size, n_keys = ids.shape
    return KeyedJaggedTensor(
        keys=keys,
        values=ids.t().reshape(-1),  # key-major, as KJT stores values
        lengths=torch.ones(batch_size * n_keys, dtype=torch.int32),
    )
