"""Raw candidate rows for `mtr score`, built from a log's decisions: the demo's and the benchmark's requests.

Each row is what a serving caller sends: the opportunity key (row_id), a candidate_id, the channel and
every raw feature column of the schema (the opportunity's context with the candidate's action columns),
and no labels. `mtr candidates --dataset DIR --out FILE` writes them from the log's own candidate table (kept
in the dataset folder by `mtr build-dataset`), or from the simulator's oracle with `--events` when the dataset
has none.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mtr.data.candidates import candidates_path, read_dataset_candidates
from mtr.errors import InputError
from mtr.io import write_parquet
from mtr.schema import DatasetSchema
from mtr.scoring.candidates import CandidateTable, candidate_model_rows, simulator_candidates


def logged_requests(
    dataset: Path | str, split: str = "test", opportunities: int = 1000, events: Path | str | None = None
) -> pl.DataFrame:
    """Every candidate of the first `opportunities` decisions of a dataset split.

    Args:
        dataset: a dataset built by `mtr build-dataset`.
        split: the split whose decisions are used.
        opportunities: how many decisions (in split order).
        events: the simulation the dataset was built from, used only when the dataset has no candidates file.

    Returns:
        One row per candidate, grouped by decision with its "none" candidate first: row_id, candidate_id
        (0..N-1), channel and the schema's feature columns.
    """
    schema = DatasetSchema.load(dataset)
    logged = pl.read_parquet(schema.split_path(dataset, split)).head(opportunities)
    if candidates_path(dataset).exists():
        candidates = CandidateTable.from_frame(read_dataset_candidates(dataset, logged["row_id"]))
    elif events is not None:
        candidates = simulator_candidates(events, logged)
    else:
        raise InputError(
            f"dataset {dataset} has no candidates file (its log had no candidate table): give --events, the "
            "simulation it was built from"
        )
    rows = candidate_model_rows(candidates.frame, logged)
    features = [f.name for f in schema.features if f.name not in (schema.row_id_column, schema.channel_column)]
    columns = [schema.row_id_column, schema.channel_column or "channel", *features]
    return rows.select(columns).with_row_index("candidate_id").with_columns(pl.col("candidate_id").cast(pl.Int64))


def write_logged_requests(
    dataset: Path, out: Path, split: str = "test", opportunities: int = 1000, events: Path | None = None
) -> None:
    """Write the raw candidate rows of a log's first decisions of a split, as `mtr score` reads them.

    Args:
        dataset: the dataset built by `mtr build-dataset` (its candidates file lists each decision's candidates).
        out: the Parquet file to write (atomically).
        split: the split whose decisions are used.
        opportunities: how many decisions (in split order).
        events: the simulation the dataset was built from, needed only when the dataset has no candidates file.
    """
    frame = logged_requests(dataset, split, opportunities, events)
    write_parquet(frame, out)
    print(f"candidates: {out} ({frame.height} candidates of {opportunities} opportunities)")
