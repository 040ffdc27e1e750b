"""User folds for cross-fitting: stable, balanced, and a fold model never trains on its held-out users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.data.datamodule import MessagingDataModule
from mtr.data.folds import UserFolds, fold_of
from mtr.errors import InputError


def test_folds_are_balanced_seeded_and_the_same_in_every_table() -> None:
    users = pl.Series("user_id", np.arange(20_000))
    folds = fold_of(users, 2, seed=0)
    assert abs(folds.mean() - 0.5) < 0.02  # 20,000 users: a 50/50 cut within sampling error
    assert set(np.unique(fold_of(users, 3, seed=0))) == {0, 1, 2}
    shuffled = users.sample(fraction=1.0, shuffle=True, seed=1)
    np.testing.assert_array_equal(fold_of(shuffled, 2, seed=0), folds[shuffled.to_numpy()])  # per user, not row
    assert (fold_of(users, 2, seed=1) != folds).mean() > 0.4  # another seed, another cut
    # Neighbouring ids do not share a fold by construction (no `id % folds`).
    assert (folds[:-1] != folds[1:]).mean() > 0.4
    names = pl.Series("user_id", [f"u{i}" for i in range(4000)])
    string_folds = fold_of(names, 2, seed=0)
    assert abs(string_folds.mean() - 0.5) < 0.04
    np.testing.assert_array_equal(fold_of(names[::-1], 2, seed=0), string_folds[::-1])


def test_a_fold_model_learns_and_selects_without_its_held_out_users(sim_dataset: Path) -> None:
    folds = UserFolds(folds=2, held_out=1)
    data = MessagingDataModule(str(sim_dataset), user_folds=folds)
    data.setup("fit")
    every = {name: pl.read_parquet(sim_dataset / f"{name}.parquet") for name in ("train", "validation", "test")}
    for name in ("train", "validation"):
        kept = every[name].filter(pl.col("row_id").is_in(data.split(name).row_id.numpy().tolist()))
        assert (folds.of(kept, name) == 0).all()  # none of fold 1's users
        assert kept.height == (folds.of(every[name], name) == 0).sum()  # every other user's rows
    data.setup("test")
    assert len(data.split("test")) == every["test"].height  # test is scored for every user


def test_bad_folds_name_the_field_and_the_table(sim_dataset: Path) -> None:
    with pytest.raises(InputError, match="user_folds.folds"):
        UserFolds(folds=1)
    with pytest.raises(InputError, match=r"user_folds.held_out: must be a fold in 0..1"):
        UserFolds(folds=2, held_out=2)
    rows = pl.read_parquet(sim_dataset / "train.parquet")
    with pytest.raises(InputError, match="table 'train' has no column 'customer'"):
        UserFolds(column="customer").of(rows, "train")
    with pytest.raises(InputError, match="unknown user_folds fields"):
        UserFolds.from_dict({"fold": 1}, "config.yaml data.user_folds")
