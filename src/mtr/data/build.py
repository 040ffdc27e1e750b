"""Raw event logs -> one row per opportunity with labels, masks and point-in-time features, split by time.

The build runs in user partitions (user_id modulo `BuildConfig.partitions`): each table is first
streamed into per-partition files, then each partition is labelled, featured and appended to the
split files, so peak memory scales with one partition. Label rules live in `mtr.data.labels`, feature
definitions in `mtr.data.features`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from mtr.data.asof import KEY
from mtr.data.candidates import candidates_path, dataset_candidates, open_candidates
from mtr.data.eventlog import EventLog, open_event_log, raise_first
from mtr.data.feature_config import SIMULATOR_FEATURES, FeatureConfig
from mtr.data.features import HISTORY_TABLES, engagements_of_logged_sends, opportunity_features
from mtr.data.label_windows import CONVERSION_WINDOW
from mtr.data.labels import (
    VALUE_COLUMN,
    ObservedUntil,
    label_columns,
    label_opportunities,
    mask_columns,
)
from mtr.data.preprocess import fit_features
from mtr.data.split_rates import split_report
from mtr.data.splits import SplitPlan, decisions_end, plan_splits
from mtr.errors import InputError
from mtr.events import EVENT_TABLES
from mtr.io import atomic_output_dir, check_output_dir
from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.schema import NO_SEND, SPLITS, DatasetSchema, messaging_tasks

# Tables keyed by user, split into partitions; `messages` is a small catalog every partition reads whole.
USER_TABLES = ("users", "opportunities", "engagements", "conversions", "unsubscribes", "activity")
CONTEXT_COLUMNS = (
    "row_id",
    "user_id",
    "ts",
    "policy_id",
    "action",
    "message_id",
    "channel",
    "hour",
    "send_ts",
    "propensity",
)


@dataclass(frozen=True)
class BuildConfig:
    """How `mtr build-dataset` splits and partitions the data (the split rule: `mtr.data.splits`).

    Args:
        train_fraction: share of the split days, the earliest ones, that form the train split.
        validation_fraction: share of the following days that form the validation split; test gets the rest.
        embargo_days: a later split starts at least this many days after the earlier one's last day
            (None: the longest label horizon, so that every earlier label has matured; 1: splits touch).
        matured_splits: splits hold only decision days whose every label has matured by the log's end
            (False: every day, with immature labels null and masked; near the log's end the conversion
            labels kept are then those whose window a send cut, which are shorter: the last days' label
            rates lean low, so use it for label-rule checks, not for training or evaluation).
        partitions: users are processed in this many groups (user_id modulo partitions); peak memory
            scales with one group, so raise it for larger logs.
        fit_rows: at most about this many train rows (a hash sample by row_id) fit the feature encodings.
        days_since_cap: value of days_since_engagement when a user has no earlier engagement, and its maximum.
        name: the dataset's name in schema.json.
    """

    train_fraction: float = 0.7
    validation_fraction: float = 0.15
    embargo_days: int | None = None
    matured_splits: bool = True
    partitions: int = 8
    fit_rows: int = 1_000_000
    days_since_cap: float = 60.0
    name: str = "event_log"

    def __post_init__(self) -> None:
        if not 0 < self.train_fraction < 1:
            raise InputError(f"build config field 'train_fraction' must be in (0, 1), got {self.train_fraction}")
        if not 0 < self.validation_fraction < 1 - self.train_fraction:
            raise InputError(
                "build config field 'validation_fraction' must be positive and leave days for test "
                f"(train_fraction + validation_fraction < 1), got {self.validation_fraction}"
            )
        if self.embargo_days is not None and self.embargo_days < 1:
            raise InputError(f"build config field 'embargo_days' must be at least 1 (or null), got {self.embargo_days}")
        for field in ("partitions", "fit_rows"):
            if getattr(self, field) < 1:
                raise InputError(f"build config field '{field}' must be at least 1, got {getattr(self, field)}")
        if not self.days_since_cap > 0:
            raise InputError(f"build config field 'days_since_cap' must be positive, got {self.days_since_cap}")


def build_dataset_from_events(
    events: Path | str,
    out: Path | str,
    config: BuildConfig | None = None,
    objectives: tuple[Objective, ...] = MESSAGING_OBJECTIVES,
    overwrite: bool = False,
    features: FeatureConfig = SIMULATOR_FEATURES,
) -> DatasetSchema:
    """Build `out/{train,validation,test}.parquet` and `out/schema.json` from the event log in `events`.

    Nothing is left in `out` if the build fails; an existing `out` is replaced only when it is an earlier
    build's (or with `overwrite`), never when it overlaps `events` (`mtr.io.check_output_dir`). `objectives`
    is the objective table: one label per objective (by its `label_rule`), tasks on every channel (and "none"
    where it exists without a send), and the table saved in schema.json. `features` declares the log's feature
    columns (`mtr.data.feature_config`); schema.json records them resolved, with their encodings.

    Returns:
        The saved schema; its metadata holds row counts, rates per task and split, the split days, the split
        rule (horizon, embargo, days left out), the feature config and the events dropped (engagements of sends
        made before the log starts).
    """
    config = config or BuildConfig()
    check_output_dir(out, "build-dataset", overwrite, [events])
    log = open_event_log(events, features)
    dropped = earlier_send_engagements(log)
    candidates = open_candidates(log)
    opportunities = log.tables["opportunities"]
    observed = ObservedUntil(log.log_end, decisions_end(opportunities, log.log_end))
    plan = plan_splits(
        opportunities,
        observed,
        objectives,
        config.train_fraction,
        config.validation_fraction,
        config.embargo_days,
        config.matured_splits,
    )
    schema = DatasetSchema(
        name=config.name,
        features=(),
        tasks=messaging_tasks(objectives),
        row_id_column="row_id",
        action_column="action",
        channel_column="channel",
        propensity_column="propensity",
        value_columns=(VALUE_COLUMN,),
        objectives=tuple(objectives),
    )
    with atomic_output_dir(out, "build-dataset", overwrite, [events]) as folder:
        _write_splits(log, config, features, observed, plan, schema, folder)
        train = _fit_sample(schema.split_path(folder, "train"), features, config.fit_rows)
        specs = fit_features(
            train, features.sparse, features.dense, features.descriptions, sources=features.sources,
            hashed=features.hashed,
        )  # fmt: skip
        metadata = _metadata(log, config, observed, plan, schema, folder) | {
            "features": features.to_dict(),
            "dropped": {"engagements_of_earlier_sends": dropped},
            "candidates": _write_candidates(log, candidates, features, schema, folder),
        }
        schema = replace(schema, features=specs, metadata=metadata)
        schema.save(folder)
    return schema


def _write_splits(
    log: EventLog,
    config: BuildConfig,
    features: FeatureConfig,
    observed: ObservedUntil,
    plan: SplitPlan,
    schema: DatasetSchema,
    folder: Path,
) -> None:
    """Build partition after partition into part files, then stream the parts into one file per split."""
    work = folder / "_work"
    for index, tables in enumerate(partitioned_tables(log, config.partitions, work / "tables")):
        frame = build_partition(
            tables, observed, config, plan.expr(), schema.objective_table, features, log_start=log.log_start
        )
        for name in SPLITS:
            part = work / "parts" / name / f"{index:05d}.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            frame.filter(pl.col("split") == name).drop("split").sort("ts", "row_id").write_parquet(part)
    for name in SPLITS:
        pl.scan_parquet(work / "parts" / name / "*.parquet").sink_parquet(schema.split_path(folder, name))
    shutil.rmtree(work)


def partitioned_tables(log: EventLog, partitions: int, work: Path) -> Iterator[dict[str, pl.LazyFrame]]:
    """Yield each user partition's tables (`messages` whole), streaming every table to part files once."""
    if partitions == 1:
        yield log.tables
        return
    for table in USER_TABLES:
        key = {"part": pl.col("user_id") % partitions}
        log.tables[table].sink_parquet(pl.PartitionBy(work / table, key=key, include_key=False), mkdir=True)
    for index in range(partitions):
        tables = {"messages": log.tables["messages"]}
        for table in USER_TABLES:
            folder = work / table / f"part={index}"
            empty = pl.LazyFrame(schema=log.tables[table].collect_schema())
            tables[table] = pl.scan_parquet(folder / "*.parquet", hive_partitioning=False) if folder.is_dir() else empty
        yield tables


def build_partition(
    tables: dict[str, pl.LazyFrame],
    observed: ObservedUntil,
    config: BuildConfig,
    split: pl.Expr,
    objectives: tuple[Objective, ...] = MESSAGING_OBJECTIVES,
    features: FeatureConfig = SIMULATOR_FEATURES,
    *,
    log_start: datetime,
) -> pl.DataFrame:
    """Context, features, labels and masks of one partition's opportunities, with a `split` column (rows
    in no split, immature or in an embargo gap, are dropped after their history has served the others).

    Engagements of sends that the log does not hold (made before it starts) are left out here; the build
    counts them first (`earlier_send_engagements`). `log_start` is the log's window start (`history_days`)."""
    opportunities = tables["opportunities"]
    engagements = engagements_of_logged_sends(tables["engagements"], opportunities)
    _check_engagements(opportunities, engagements)
    events = {name: engagements if name == "engagements" else tables[name] for name in HISTORY_TABLES}
    features = opportunity_features(
        opportunities,
        tables["users"],
        tables["messages"],
        **events,
        config=features,
        log_start=log_start,
        days_since_cap=config.days_since_cap,
    )
    labels = label_opportunities(opportunities, **events, observed=observed, objectives=objectives)
    action = pl.format("{}:{}:{}", "message_id", "channel", "hour")
    context = opportunities.select(*EVENT_TABLES["opportunities"]).with_columns(
        row_id=pl.col(KEY),
        action=pl.when(pl.col("channel") == NO_SEND).then(pl.lit(NO_SEND)).otherwise(action),
        split=split,
    )
    frame = context.join(features, on=KEY).join(labels, on=KEY)
    columns = (*CONTEXT_COLUMNS, *(c for c in features.collect_schema().names() if c != KEY))
    tasks = messaging_tasks(objectives)
    frame = frame.filter(pl.col("split").is_not_null())
    return frame.select(*columns, *label_columns(tasks), *mask_columns(tasks), VALUE_COLUMN, "split").collect()


def _check_engagements(opportunities: pl.LazyFrame, engagements: pl.LazyFrame) -> None:
    """Each engagement refers to a send of the same user, on its channel, and does not precede it."""
    sends = opportunities.filter(pl.col("send_ts").is_not_null()).select(KEY, "user_id", "channel", "send_ts")
    matched = engagements.join(sends, on=[KEY, "user_id"], how="left", suffix="_of_send")
    raise_first(
        "engagements",
        matched,
        [
            (KEY, pl.col("send_ts").is_null(), "do not refer to a send of the same user in table 'opportunities'"),
            ("channel", pl.col("channel") != pl.col("channel_of_send"), "differ from the channel of their send"),
            ("ts", pl.col("ts") < pl.col("send_ts"), "are before the send they refer to"),
        ],
    )


def _write_candidates(
    log: EventLog, candidates: pl.LazyFrame | None, features: FeatureConfig, schema: DatasetSchema, folder: Path
) -> int | None:
    """Write the candidates of every split row into the dataset folder; their count (None: the log has none)."""
    if candidates is None:
        return None
    rows = pl.concat([pl.scan_parquet(schema.split_path(folder, name)).select("row_id") for name in SPLITS])
    dataset_candidates(candidates, rows, log.tables["messages"], features.messages.columns).sink_parquet(
        candidates_path(folder)
    )
    return pl.scan_parquet(candidates_path(folder)).select(pl.len()).collect().item()


def earlier_send_engagements(log: EventLog) -> int:
    """How many engagements refer to no opportunity of the log: a log that starts mid-stream has engagements of
    sends made before it, within the longest window a send's outcomes are counted over (`CONVERSION_WINDOW`) of
    its start. Later ones, or one whose opportunity belongs to another user, are an export that went wrong."""
    opportunities = log.tables["opportunities"].select(KEY, pl.col("user_id").alias("user_of_send"))
    matched = log.tables["engagements"].join(opportunities, on=KEY, how="left")
    unknown = pl.col("user_of_send").is_null()
    raise_first(
        "engagements",
        matched,
        [
            (
                "user_id",
                ~unknown & (pl.col("user_id") != pl.col("user_of_send")),
                "refer to another user's opportunity in table 'opportunities'",
            ),
            (
                KEY,
                unknown & (pl.col("ts") >= log.log_start + CONVERSION_WINDOW),
                f"refer to no opportunity yet come {CONVERSION_WINDOW.days} days or more after log_start (engagements"
                " of sends made before the log are dropped only near its start): is table 'opportunities' complete?",
            ),
        ],
    )
    return matched.select(pl.col("user_of_send").is_null().sum()).collect().item()


def _fit_sample(train_path: Path, features: FeatureConfig, fit_rows: int) -> pl.DataFrame:
    """The train split's feature columns, hash-sampled by row_id down to about `fit_rows` rows."""
    train = pl.scan_parquet(train_path)
    rows = train.select(pl.len()).collect().item()
    if rows == 0:
        raise InputError("the train split is empty: no opportunities in the earliest days")
    sampled = train.filter(pl.col("row_id").hash(seed=0) % rows < fit_rows) if rows > fit_rows else train
    return sampled.select(*features.sparse, *features.dense).collect()


def _metadata(
    log: EventLog, config: BuildConfig, observed: ObservedUntil, plan: SplitPlan, schema: DatasetSchema, folder: Path
) -> dict[str, Any]:
    report = {split: split_report(pl.scan_parquet(schema.split_path(folder, split)), schema) for split in SPLITS}
    return {
        "source": "event_log",
        "events": str(log.folder),
        "fingerprint": log.fingerprint(),
        "log_start": log.log_start.isoformat(),
        "log_end": log.log_end.isoformat(),
        "decisions_end": observed.decisions_end.isoformat(),
        "split_days": {
            split: {"first": first.isoformat(), "last": last.isoformat()} for split, (first, last) in plan.days.items()
        },
        "split_rule": plan.to_dict(),
        "rows": {split: report[split]["rows"] for split in SPLITS},
        "rates": {split: report[split]["tasks"] for split in SPLITS},
        "config": asdict(config),
    }
