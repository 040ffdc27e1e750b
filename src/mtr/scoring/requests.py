"""Raw candidate rows for `mtr score`: the demo's and the benchmark's requests, and a platform's at a time.

Each row is what a serving caller sends: the opportunity key (row_id), a candidate_id, the channel and
every raw feature column of the schema (the opportunity's context with the candidate's action columns),
and no labels. `mtr candidates --dataset DIR --out FILE` writes them for logged decisions, from the log's own
candidate table (kept in the dataset folder by `mtr build-dataset`), or from the simulator's oracle with
`--events` when the dataset has none; with `--events LOG --at TIME`, for new decisions at that time, with
features as of then and every action the contract's rules allow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mtr.data.asof import KEY
from mtr.data.candidates import candidates_path, possible_actions, read_dataset_candidates
from mtr.data.eventlog import open_event_log
from mtr.data.feature_config import FeatureConfig
from mtr.data.features import HISTORY_TABLES, engagements_of_logged_sends, opportunity_features
from mtr.errors import InputError
from mtr.events import TIMESTAMP
from mtr.io import write_parquet
from mtr.schema import NO_SEND, DatasetSchema
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
    return request_rows(rows, schema, [schema.row_id_column, schema.channel_column or "channel"])


def write_requests(
    dataset: Path,
    out: Path,
    split: str = "test",
    opportunities: int = 1000,
    events: Path | None = None,
    at: str | None = None,
    users: int = 1000,
) -> None:
    """Write serving requests, the raw candidate rows `mtr score` reads: of a log's decisions, or of new ones.

    Without `at`: every candidate of the first `opportunities` decisions of a split (the log's candidate table).
    With `at`: a decision at that time for each of the first `users` users, with every action the contract's
    rules allow then and features as of then, from the event log (`--events`), for any platform's log.

    Args:
        dataset: the dataset built by `mtr build-dataset` from the log.
        out: the Parquet file to write (atomically).
        split: the split whose decisions are used (without `at`).
        opportunities: how many decisions (in split order; without `at`).
        events: the event log; needed with `at`, and without it only when the dataset has no candidates file.
        at: an ISO time (UTC when naive), e.g. 2024-06-23T09:00, from log_start up to log_end (the log must hold
            every event before it).
        users: how many users get a decision at `at`.
    """
    if at is None:
        frame = logged_requests(dataset, split, opportunities, events)
        what = f"{opportunities} opportunities"
    else:
        if events is None:
            raise InputError("events: new decisions at --at need the event log their features are counted from")
        try:
            moment = datetime.fromisoformat(at)
        except ValueError as error:
            raise InputError(f"at: not an ISO time: {at!r}") from error
        frame = decision_requests(events, dataset, moment, users)
        what = f"{frame['row_id'].n_unique()} decisions at {moment.isoformat()}"
    write_parquet(frame, out)
    print(f"candidates: {out} ({frame.height} candidates of {what})")


def decision_requests(events: Path | str, dataset: Path | str, at: datetime, users: int = 1000) -> pl.DataFrame:
    """Serving requests for new decisions at time `at`: every possible action of the first `users` users.

    Features are point-in-time at `at` from the event log (its events strictly before `at`), computed by the
    dataset's declared features (`schema.json`'s `metadata.features`); the actions are those the contract's
    rules allow at `at` (`mtr.data.candidates.possible_actions`, at the hours the log's sends use). A declared
    decision-time context column (an `opportunities` attribute) takes the user's latest logged value.

    Args:
        events: the event log (any platform's, as `mtr build-dataset` read it), complete up to `at`.
        dataset: the dataset built from it (its schema gives the features).
        at: the decision time (UTC; a naive time is read as UTC), within the log's window.
        users: how many users (by user_id, among those signed up before `at`).

    Returns:
        One row per candidate, grouped by decision with its "none" first: row_id, candidate_id, user_id, channel,
        message_id, hour and the schema's feature columns.
    """
    schema = DatasetSchema.load(dataset)
    if "features" not in schema.metadata:
        raise InputError(f"dataset {dataset}: schema.json has no metadata.features; it was not built from an event log")
    config = FeatureConfig.from_dict(schema.metadata["features"], source=f"{dataset}/schema.json metadata.features")
    log = open_event_log(events, config)
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    if not log.log_start <= at <= log.log_end:
        raise InputError(f"at: {at} is outside the log's window [{log.log_start}, {log.log_end}]")
    tables = log.tables
    opportunities = tables["opportunities"]
    first_id = (opportunities.select(pl.col(KEY).max()).collect().item() or 0) + 1
    chosen = tables["users"].filter(pl.col("signup_ts") < at).select("user_id").sort("user_id").head(users).collect()
    if chosen.height == 0:
        raise InputError(f"at: no user of table 'users' signed up before {at}")
    decisions = chosen.select(
        pl.int_range(first_id, first_id + chosen.height, dtype=pl.Int64).alias(KEY),
        "user_id",
        pl.lit(at, dtype=TIMESTAMP).alias("ts"),
    ).lazy()
    context = config.opportunities.columns
    latest = (
        opportunities.filter(pl.col("ts") < at)
        .select("user_id", "ts", *context)
        .sort("ts")
        .group_by("user_id")
        .agg(pl.col(c).last() for c in context)
    )
    new_rows = decisions.join(latest, on="user_id", how="left").with_columns(
        pl.lit(None, pl.Int64).alias("message_id"),
        pl.lit(NO_SEND).alias("channel"),
        pl.lit(None, pl.Int32).alias("hour"),
        pl.lit(None, TIMESTAMP).alias("send_ts"),
        pl.lit("serving").alias("policy_id"),
        pl.lit(None, pl.Float64).alias("propensity"),
    )
    their_decisions = opportunities.join(chosen.lazy(), on="user_id", how="semi")
    per_user = {name: tables[name].join(chosen.lazy(), on="user_id", how="semi") for name in HISTORY_TABLES}
    per_user["engagements"] = engagements_of_logged_sends(per_user["engagements"], their_decisions)
    features = opportunity_features(
        new_rows, tables["users"], tables["messages"], **per_user, config=config, log_start=log.log_start,
        days_since_cap=schema.metadata["config"]["days_since_cap"], logged=their_decisions,
    )  # fmt: skip
    logged = (
        new_rows.select(KEY, "user_id", "ts", "message_id", "channel", "hour")
        .join(features, on=KEY, how="left")
        .rename({KEY: "row_id"})
        .collect()
    )
    hours = tuple(opportunities.select(pl.col("hour").drop_nulls().unique()).collect().to_series().to_list())
    actions = possible_actions(log, decisions, hours).rename({KEY: "row_id"})
    actions = actions.join(
        tables["messages"].select("message_id", *config.messages.columns).collect(), on="message_id", how="left"
    )
    candidates = CandidateTable.from_frame(actions)
    rows = candidate_model_rows(candidates.frame, logged)
    return request_rows(rows, schema, ["row_id", "user_id", "channel", "message_id", "hour"])


def request_rows(rows: pl.DataFrame, schema: DatasetSchema, leading: list[str]) -> pl.DataFrame:
    """The requests as `mtr score` reads them: candidate_id (0..N-1), the `leading` key columns, then every
    feature column of the schema not among them."""
    features = [f.name for f in schema.features if f.name not in leading]
    columns = [*leading, *features]
    return rows.select(columns).with_row_index("candidate_id").with_columns(pl.col("candidate_id").cast(pl.Int64))
