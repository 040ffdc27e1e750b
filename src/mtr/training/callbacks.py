"""Callbacks every training run uses: run provenance, exact resume, prediction files."""

from __future__ import annotations

import os
import platform
import random
import subprocess
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import polars
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

import mtr
from mtr.io import write_json, write_parquet


def git_commit() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=Path(mtr.__file__).parent
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def run_info(seed: int | None, data_fingerprint: str | None) -> dict[str, Any]:
    """What a reader needs to trust or repeat a run, saved next to its checkpoints."""
    import lightning
    import polars as pl_

    return {
        "seed": seed,
        "git_commit": git_commit(),
        "data_fingerprint": data_fingerprint,
        "versions": {
            "mtr": mtr.__version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "lightning": lightning.__version__,
            "polars": pl_.__version__,
        },
    }


class RngState(pl.Callback):
    """Keeps the Python, NumPy and torch RNG states in checkpoints so that a resumed run continues exactly.

    States are stored as tensors and plain Python values, so checkpoints load with weights_only=True.
    """

    def state_dict(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, cached_gauss = np.random.get_state()
        return {
            "python": random.getstate(),
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gauss),
            "torch": torch.get_rng_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        random.setstate(state_dict["python"])
        kind, keys, position, has_gauss, cached_gauss = state_dict["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
        torch.set_rng_state(state_dict["torch"])


class PredictionParquetWriter(BasePredictionWriter):
    """Writes `predict_step` outputs as Parquet: the row id and one prediction column `p_{task}` per task (the
    probability of a binary task, the value of a continuous one).

    Args:
        path: output file; written through a temporary file and renamed.
        task_names: column names of the prediction matrix, in schema order.
        row_id_column: name of the row id column in the output.
    """

    def __init__(self, path: str | os.PathLike, task_names: list[str], row_id_column: str = "row_id") -> None:
        super().__init__(write_interval="epoch")
        self.path = Path(path)
        self.task_names = task_names
        self.row_id_column = row_id_column

    def write_on_epoch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        row_ids = torch.cat([p["row_id"] for p in predictions]).cpu().numpy()
        values = torch.cat([p["predictions"] for p in predictions]).float().cpu().numpy()
        frame = polars.DataFrame({self.row_id_column: row_ids}).with_columns(
            polars.Series(f"p_{name}", values[:, i]) for i, name in enumerate(self.task_names)
        )
        write_parquet(frame, self.path)
        print(f"predictions: {self.path} ({frame.height} rows, {len(self.task_names)} tasks)")


def save_run_info(folder: Path, seed: int | None, data_fingerprint: str | None) -> None:
    write_json(folder / "run_info.json", run_info(seed, data_fingerprint))
