"""Raw candidate rows for `mtr score`, built from a simulated log: the demo's and the benchmark's requests.

Each row is what a serving caller sends: the opportunity key (row_id), a candidate_id, the channel and
every raw feature column of the schema (the opportunity's context with the candidate's action columns),
and no labels. `mtr candidates --events DIR --dataset DIR --out FILE` writes them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mtr.io import write_parquet
from mtr.schema import DatasetSchema
from mtr.scoring.candidates import candidate_model_rows, simulator_candidates


def simulator_requests(
    events: Path | str, dataset: Path | str, split: str = "test", opportunities: int = 1000
) -> pl.DataFrame:
    """Every eligible candidate of the first `opportunities` opportunities of a dataset split.

    Args:
        events: the folder written by `mtr simulate` (its oracle lists the eligible actions).
        dataset: the dataset built from it by `mtr build-dataset`.
        split: the split whose opportunities are used.
        opportunities: how many opportunities (in split order).

    Returns:
        One row per candidate, grouped by opportunity with its "none" candidate first: row_id,
        candidate_id (0..N-1), channel and the schema's feature columns.
    """
    schema = DatasetSchema.load(dataset)
    logged = pl.read_parquet(schema.split_path(dataset, split)).head(opportunities)
    candidates = simulator_candidates(events, logged)
    rows = candidate_model_rows(candidates.frame, logged)
    features = [f.name for f in schema.features if f.name not in (schema.row_id_column, schema.channel_column)]
    columns = [schema.row_id_column, schema.channel_column or "channel", *features]
    return rows.select(columns).with_row_index("candidate_id").with_columns(pl.col("candidate_id").cast(pl.Int64))


def write_simulator_requests(
    events: Path, dataset: Path, out: Path, split: str = "test", opportunities: int = 1000
) -> None:
    """Write the raw candidate rows of a simulated log's first opportunities, as `mtr score` reads them.

    Args:
        events: the folder written by `mtr simulate`.
        dataset: the dataset built from it by `mtr build-dataset`.
        out: the Parquet file to write (atomically).
        split: the split whose opportunities are used.
        opportunities: how many opportunities (in split order).
    """
    frame = simulator_requests(events, dataset, split, opportunities)
    write_parquet(frame, out)
    print(f"candidates: {out} ({frame.height} candidates of {opportunities} opportunities)")
