"""Fixtures that write event logs and build datasets from them under tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from handmade_log import LOG_END, START, Tables, handmade_tables

from mtr.data.build import BuildConfig, build_dataset_from_events
from mtr.data.synthetic import write_event_log
from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.schema import SPLITS, DatasetSchema


@pytest.fixture
def write_log(tmp_path: Path) -> Callable[..., Path]:
    """Write tables (default: the hand-made ones) as an event log under tmp_path; returns its folder."""
    count = iter(range(1_000))

    def write(tables: Tables | None = None, end: datetime = LOG_END, start: datetime = START) -> Path:
        return write_event_log(tmp_path / f"events{next(count)}", tables or handmade_tables(), start, end)

    return write


@pytest.fixture
def build(tmp_path: Path, write_log: Callable[..., Path]) -> Callable[..., tuple[pl.DataFrame, DatasetSchema]]:
    """Build a dataset from tables (default: hand-made) and an objective table (default: messaging); returns all
    rows (with a `split` column) and the schema. The hand-made logs are days long, not months: their splits
    take every day (immature labels null) and touch, unless a test asks for the matured split rule."""
    count = iter(range(1_000))

    def run(
        tables: Tables | None = None,
        end: datetime = LOG_END,
        objectives: tuple[Objective, ...] = MESSAGING_OBJECTIVES,
        **config: Any,
    ) -> tuple[pl.DataFrame, DatasetSchema]:
        out = tmp_path / f"dataset{next(count)}"
        every_day = {"matured_splits": False, "embargo_days": 1}
        schema = build_dataset_from_events(write_log(tables, end), out, BuildConfig(**every_day | config), objectives)
        rows = pl.concat(
            [pl.read_parquet(schema.split_path(out, split)).with_columns(split=pl.lit(split)) for split in SPLITS]
        )
        return rows.sort("row_id"), schema

    return run
