"""A Lightning DataModule over a prepared dataset folder (tables + schema.json).

Each split is read once into tensors through the shared preprocessing (`encode_features`); batches are
then index slices, so there is no per-row Python in the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import polars
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mtr.data.batch import Batch, sparse_batch
from mtr.data.folds import UserFolds
from mtr.data.preprocess import encode_features, encode_targets
from mtr.errors import InputError
from mtr.io import files_fingerprint
from mtr.schema import SCHEMA_FILE, DatasetSchema

# The splits a fold model learns from and is selected on; test and predict are scored for every user.
FOLDED_SPLITS = ("train", "validation")


class TableDataset(Dataset):
    """All rows of one split as tensors; indexing with a tensor of row positions returns a `Batch`."""

    def __init__(self, frame: polars.DataFrame, schema: DatasetSchema, table: str) -> None:
        if frame.height == 0:
            raise InputError(f"table '{table}' is empty")
        named = {
            "row_id_column": schema.row_id_column,
            "channel_column": schema.channel_column,
            "action_column": schema.action_column,
            "propensity_column": schema.propensity_column,
        }
        for field_name, column in named.items():
            if column is not None and column not in frame.columns:
                raise InputError(f"table '{table}' has no column '{column}' (the schema's {field_name})")
        features = encode_features(frame, schema, table=table)
        labels, masks = encode_targets(frame, schema, table=table)
        self.keys = [f.name for f in schema.sparse_features]
        self.sparse_ids = torch.from_numpy(features.sparse_ids)
        self.dense = torch.from_numpy(features.dense)
        self.labels = torch.from_numpy(labels)
        self.masks = torch.from_numpy(masks)
        propensity = (
            frame[schema.propensity_column].cast(polars.Float32).fill_null(1.0).to_numpy()
            if schema.propensity_column
            else np.ones(frame.height, np.float32)
        )
        self.propensity = torch.from_numpy(np.array(propensity, np.float32))
        self.row_id = torch.from_numpy(frame[schema.row_id_column].cast(polars.Int64).to_numpy().copy())

    def __len__(self) -> int:
        return self.dense.shape[0]

    def __getitem__(self, rows: torch.Tensor) -> Batch:
        return Batch(
            sparse=sparse_batch(self.keys, self.sparse_ids[rows]),
            dense=self.dense[rows],
            labels=self.labels[rows],
            masks=self.masks[rows],
            propensity=self.propensity[rows],
            row_id=self.row_id[rows],
        )


class BatchIndices(Sampler[torch.Tensor]):
    """Yields whole batches of row positions as tensors.

    Shuffling draws from a generator seeded with (seed, epoch), so a resumed run sees the same batches as
    an uninterrupted one. Under DDP each rank takes every `world_size`-th batch.
    """

    def __init__(
        self, n_rows: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:
        self.n_rows, self.batch_size, self.shuffle = n_rows, batch_size, shuffle
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n_rows, generator=generator)
        else:
            order = torch.arange(self.n_rows)
        yield from order.split(self.batch_size)[self.rank :: self.world_size]

    def __len__(self) -> int:
        n_batches = -(-self.n_rows // self.batch_size)
        return len(range(self.rank, n_batches, self.world_size))


def dataset_fingerprint(path: Path, schema: DatasetSchema | None = None) -> str:
    """SHA-256 over a dataset folder's schema.json and split files (a run records the one it was trained on)."""
    schema = schema or DatasetSchema.load(path)
    splits = {name: schema.split_path(path, name) for name in schema.splits}
    return files_fingerprint({**splits, SCHEMA_FILE: Path(path) / SCHEMA_FILE})


class MessagingDataModule(pl.LightningDataModule):
    """Batches from a dataset folder written by `mtr build-dataset` or `mtr data prepare`.

    Args:
        path: the dataset folder (tables and schema.json).
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and predict.
        predict_split: the split `mtr predict` scores.
        shuffle_seed: seed of the training batch order; None takes torch's initial seed (set by
            `seed_everything`).
        user_folds: for cross-fitting (`mtr.data.folds`): train and select the model without the held-out
            fold's users (train and validation lose its rows), whose rows are then evidence for `mtr pareto`.
    """

    def __init__(
        self,
        path: str,
        batch_size: int = 1024,
        eval_batch_size: int = 8192,
        predict_split: str = "test",
        shuffle_seed: int | None = None,
        user_folds: UserFolds | None = None,
    ) -> None:
        super().__init__()
        for name, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if size < 1:
                raise InputError(f"data.{name}: must be at least 1, got {size}")
        self.path = Path(path)
        self.schema = DatasetSchema.load(self.path)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.predict_split = predict_split
        self.shuffle_seed = torch.initial_seed() % 2**31 if shuffle_seed is None else shuffle_seed
        self.user_folds = user_folds
        self._check_columns()  # before the trainer makes a run folder and loggers: nothing left behind
        self.datasets: dict[str, TableDataset] = {}
        self.save_hyperparameters()

    def _check_columns(self) -> None:
        """Every split file holds the schema's feature, label, mask and key columns, each feature with the dtype
        the schema records (read from the files' footers)."""
        schema = self.schema
        needed = [f.name for f in schema.features] + [schema.row_id_column]
        needed += [t.label_column for t in schema.tasks] + [t.mask_column for t in schema.tasks if t.mask_column]
        for name in schema.splits:
            path = schema.split_path(self.path, name)
            if not path.exists():
                continue  # a split that is never read may be absent; one that is read says so then
            present = polars.read_parquet_schema(path)
            missing = [column for column in dict.fromkeys(needed) if column not in present]
            if missing:
                raise InputError(f"table '{name}' has no column '{missing[0]}' ({path}; missing {missing[:5]})")
            for feature in schema.features:  # the encodings were fitted on this dtype (an edited schema is not)
                if str(present[feature.name]) != feature.dtype:
                    raise InputError(
                        f"table '{name}' column '{feature.name}' has dtype {present[feature.name]}, but the schema's "
                        f"feature says {feature.dtype} ({self.path / SCHEMA_FILE})"
                    )

    @property
    def fingerprint(self) -> str:
        """SHA-256 over schema.json and the split files: which data a run saw."""
        return dataset_fingerprint(self.path, self.schema)

    def split(self, name: str) -> TableDataset:
        """The split's tensors, read on first use."""
        if name not in self.datasets:
            path = self.schema.split_path(self.path, name)
            if not path.exists():
                raise InputError(f"table '{name}' not found: {path}")
            frame = polars.read_parquet(path)
            if self.user_folds is not None and name in FOLDED_SPLITS:
                frame = self.user_folds.training_rows(frame, name)
            self.datasets[name] = TableDataset(frame, self.schema, table=name)
        return self.datasets[name]

    def setup(self, stage: str) -> None:
        needed = {
            "fit": ["train", "validation"],
            "validate": ["validation"],
            "test": ["test"],
            "predict": [self.predict_split],
        }[stage]
        for name in needed:
            self.split(name)

    def _loader(self, name: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.split(name)
        trainer = self.trainer
        rank, world_size = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = BatchIndices(len(dataset), batch_size, shuffle, self.shuffle_seed, rank, world_size)
        return DataLoader(dataset, sampler=sampler, batch_size=None)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.predict_split, self.eval_batch_size, shuffle=False)
