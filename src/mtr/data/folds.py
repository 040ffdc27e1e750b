"""User folds for cross-fitting: a model trained without one fold's users scores that fold's rows honestly.

A Pareto study judges policies built from a model's scores. Judged on rows the model learnt from, a policy
is flattered by what the model memorised, so the study's evidence is usually one small split of days the
model never saw. Cross-fitting widens it: the users are cut into K seeded folds, K models are each trained
without one fold, and every user's rows of every split (the training days included) are scored by the model
that never saw that user (`mtr pareto --run '[fold0, fold1]'`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl

from mtr.errors import InputError

_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


@dataclass(frozen=True)
class UserFolds:
    """`folds` seeded groups of users, of which the model trains without `held_out`.

    Args:
        folds: number of folds (at least 2).
        held_out: the fold whose users the model never sees (0 .. folds - 1).
        column: the user column of the dataset's tables.
        seed: seed of the assignment; every fold model of one cross-fit shares it.
    """

    folds: int = 2
    held_out: int = 0
    column: str = "user_id"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise InputError(f"user_folds.folds: cross-fitting needs at least 2 folds, got {self.folds}")
        if not 0 <= self.held_out < self.folds:
            raise InputError(f"user_folds.held_out: must be a fold in 0..{self.folds - 1}, got {self.held_out}")

    def of(self, frame: pl.DataFrame, table: str) -> np.ndarray:
        """[rows] the fold of each row's user; the same user gets the same fold in every table and process."""
        if self.column not in frame.columns:
            raise InputError(f"table '{table}' has no column '{self.column}' (user_folds.column)")
        users = frame[self.column]
        if users.null_count():
            raise InputError(f"table '{table}', column '{self.column}': {users.null_count()} null users")
        return fold_of(users, self.folds, self.seed)

    def training_rows(self, frame: pl.DataFrame, table: str) -> pl.DataFrame:
        """The rows of every user outside the held-out fold."""
        kept = frame.filter(pl.Series(self.of(frame, table) != self.held_out))
        if kept.height == 0:
            raise InputError(f"table '{table}': no rows outside user fold {self.held_out} of {self.folds}")
        return kept

    @classmethod
    def from_dict(cls, fields: dict, source: str) -> UserFolds:
        unknown = sorted(set(fields) - {"folds", "held_out", "column", "seed"})
        if unknown:
            raise InputError(f"{source}: unknown user_folds fields {unknown}")
        return cls(**fields)


def fold_of(users: pl.Series, folds: int, seed: int) -> np.ndarray:
    """[rows] a stable seeded fold per user: a 64-bit mix of integer ids, a BLAKE2 digest of string ones.

    Stable across processes, machines and library versions (unlike Python's or polars' hashes), so a study
    reproduces the folds its models were trained with.
    """
    if users.dtype.is_integer():
        mixed = _mix64(users.cast(pl.Int64).to_numpy().astype(np.uint64) ^ np.uint64(seed))
        return (mixed % np.uint64(folds)).astype(np.int64)
    distinct, inverse = np.unique(users.cast(pl.String).to_numpy(), return_inverse=True)
    digests = [hashlib.blake2b(f"{seed}:{u}".encode(), digest_size=8).digest() for u in distinct]
    per_user = np.array([int.from_bytes(d, "little") % folds for d in digests], dtype=np.int64)
    return per_user[inverse]


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: neighbouring ids land in unrelated folds."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _MIX[0]
        x = (x ^ (x >> np.uint64(27))) * _MIX[1]
        return x ^ (x >> np.uint64(31))
