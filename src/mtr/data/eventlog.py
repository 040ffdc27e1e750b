"""Opening a raw event-log folder (`{table}.parquet` per table of the contract, plus `meta.json`).

Everything a build can check on whole tables with streaming aggregates is checked here, before any
output is written; the checks that need one user's rows together run per partition in `build.py`.
Each failure raises `InputError` naming the table and the column (or meta.json and the field).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mtr.data.feature_config import ATTRIBUTE_TABLES, SIMULATOR_FEATURES, FeatureConfig, TableFeatures
from mtr.data.preprocess import SPARSE_RAW_DTYPES
from mtr.errors import InputError
from mtr.events import CANDIDATES_FILE, CANDIDATES_TABLE, EVENT_TABLES, META_FILE, OPTIONAL_COLUMNS, TIMESTAMP
from mtr.io import files_fingerprint
from mtr.schema import CHANNELS, NO_SEND
from mtr.tables import NUMERIC, DtypeSpec, check_columns, scan_table

# A check: (column, expression true on the bad rows, what is wrong with those rows).
Check = tuple[str, pl.Expr, str]
# True on every row of a frame (a bare literal would count once, not once per row).
EVERY_ROW = pl.int_range(pl.len()) >= 0


@dataclass(frozen=True)
class EventLog:
    """A validated raw event log.

    Attributes:
        folder: the event-log folder.
        log_start: start of the observation window (UTC, inclusive).
        log_end: end of the observation window (UTC, exclusive).
        tables: table name -> lazy scan with the contract's columns (`OPTIONAL_COLUMNS` where present) and the
            declared attributes only, timestamps as Datetime("us", "UTC").
        paths: table name -> Parquet file.
    """

    folder: Path
    log_start: datetime
    log_end: datetime
    tables: dict[str, pl.LazyFrame]
    paths: dict[str, Path]

    def fingerprint(self) -> str:
        """SHA-256 over meta.json and every table's bytes, in table-name order."""
        return event_log_fingerprint(self.folder)


def event_log_fingerprint(folder: Path | str) -> str:
    """The fingerprint of an event-log folder, as `mtr build-dataset` records it in a dataset's schema (the
    optional candidate table included where the log has one)."""
    folder = Path(folder)
    candidates = folder / CANDIDATES_FILE
    optional = {CANDIDATES_TABLE: candidates} if candidates.exists() else {}
    return files_fingerprint({**table_paths(folder), **optional, "meta": folder / META_FILE})


def table_paths(folder: Path) -> dict[str, Path]:
    """Each table of the event-log contract and its Parquet file in `folder`."""
    return {table: folder / f"{table}.parquet" for table in EVENT_TABLES}


def open_event_log(folder: Path | str, features: FeatureConfig = SIMULATOR_FEATURES) -> EventLog:
    """Read meta.json, scan every table of the contract and run the whole-table checks.

    Args:
        folder: the event-log folder.
        features: the declared features; their attribute columns are kept beside the contract's.

    Raises:
        InputError: meta.json missing or broken, a table or column missing (a declared feature's included,
            named with its config field), a wrong dtype, an empty table, an unknown channel, or timestamps out
            of order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"event-log folder not found: {folder}")
    log_start, log_end = read_meta(folder)
    paths = table_paths(folder)
    tables = {table: _scan_utc(paths[table], table, features) for table in EVENT_TABLES}
    log = EventLog(folder, log_start, log_end, tables, paths)
    _check_tables(log)
    return log


def read_meta(folder: Path) -> tuple[datetime, datetime]:
    """The observation window `[log_start, log_end)` from `folder/meta.json`, as UTC datetimes."""
    path = folder / META_FILE
    if not path.exists():
        raise InputError(f"{META_FILE} not found in {folder}: an event log needs its observation window")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(raw, dict):
        raise InputError(f"{path} must hold a JSON object with 'log_start' and 'log_end'")
    bounds = []
    for field in ("log_start", "log_end"):
        if field not in raw:
            raise InputError(f"{path}: field '{field}' is missing")
        try:
            moment = datetime.fromisoformat(str(raw[field]))
        except ValueError as error:
            raise InputError(f"{path}: field '{field}' is not an ISO timestamp: {raw[field]!r}") from error
        # A naive timestamp is read as UTC, like every timestamp of the contract.
        bounds.append(moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC))
    if bounds[1] <= bounds[0]:
        raise InputError(f"{path}: field 'log_end' ({bounds[1]}) must be after 'log_start' ({bounds[0]})")
    return bounds[0], bounds[1]


def _scan_utc(path: Path, table: str, features: FeatureConfig) -> pl.LazyFrame:
    """Scan a table, keep the contract's columns (its optional ones where present) and the declared attribute
    columns, and bring every timestamp to Datetime("us", "UTC")."""
    frame = scan_table(path, table, EVENT_TABLES[table])
    schema = frame.collect_schema()
    declared: dict[str, DtypeSpec] = {}
    if table in ATTRIBUTE_TABLES:
        attributes: TableFeatures = getattr(features, table)
        for kind, columns, dtypes in (
            ("sparse", attributes.sparse, SPARSE_RAW_DTYPES),
            ("hashed", tuple(attributes.hashed), SPARSE_RAW_DTYPES),
            ("dense", tuple(attributes.dense), NUMERIC + (pl.Boolean,)),
        ):
            for column in columns:
                if column not in schema:
                    default = " (the default, the simulator's set: give yours with --features)"
                    raise InputError(
                        f"feature config{default if features == SIMULATOR_FEATURES else ''} field '{table}.{kind}' "
                        f"names column '{column}', which table '{table}' lacks (columns: {schema.names()})"
                    )
                declared[column] = dtypes
    # The contract's optional columns (a message's launched_ts) are kept where the table has them.
    declared |= {c: dtype for c, dtype in OPTIONAL_COLUMNS.get(table, {}).items() if c in schema}
    check_columns(table, schema, declared)
    required = {**EVENT_TABLES[table], **declared}
    columns = []
    for column in required:
        dtype = schema[column]
        if isinstance(dtype, pl.Datetime):
            if dtype.time_zone is None:
                raise InputError(f"table '{table}' column '{column}' has dtype {dtype}, expected a UTC Datetime")
            columns.append(pl.col(column).dt.convert_time_zone("UTC").cast(TIMESTAMP))
        else:
            columns.append(pl.col(column))
    return frame.select(columns)


def raise_first(table: str, frame: pl.LazyFrame, checks: list[Check]) -> None:
    """Run `checks` in one pass over `frame`; raise `InputError` for the first one with bad rows."""
    if not checks:
        return
    counts = frame.select(
        [bad.sum().alias(f"n{i}") for i, (_, bad, _) in enumerate(checks)]
        + [
            pl.col(column).filter(bad).first().cast(pl.String).alias(f"e{i}")
            for i, (column, bad, _) in enumerate(checks)
        ]
    ).collect(engine="streaming")
    for i, (column, _, problem) in enumerate(checks):
        count = counts[f"n{i}"][0] or 0
        if count:
            example = counts[f"e{i}"][0]
            raise InputError(f"table '{table}' column '{column}': {count} row(s) {problem} (first: {example})")


def _require_rows(table: str, frame: pl.LazyFrame, why: str) -> None:
    if frame.select(pl.len()).collect().item() == 0:
        raise InputError(f"table '{table}' is empty: {why}")


def _unknown_channel(column: str, allowed: tuple[str, ...]) -> Check:
    bad = pl.col(column).is_null() | ~pl.col(column).is_in(list(allowed))
    return column, bad, f"have an unknown channel (allowed: {', '.join(allowed)})"


def _check_key(table: str, frame: pl.LazyFrame, column: str) -> None:
    """A key column has no nulls and no repeats; sorted, a repeat equals its predecessor.

    Sorting keeps a 10M-row check near the column's own size, where `is_duplicated` builds a large hash table.
    """
    key = frame.select(pl.col(column).sort())
    raise_first(
        table, key, [(column, pl.col(column).is_null() | (pl.col(column).diff() == 0), "are missing or repeat a key")]
    )


def _missing(column: str) -> Check:
    return column, pl.col(column).is_null(), "are missing"


def _check_tables(log: EventLog) -> None:
    """The whole-table checks: non-empty logs, channels, keys, and timestamp order within a row."""
    tables = log.tables
    for table in ("users", "opportunities"):
        _require_rows(table, tables[table], "nothing to build a dataset from")
    # A log with sends has engagements, conversions and activity: an empty table is an export that went wrong,
    # and would silently label every row 0 (unsubscribes, rare, may be empty).
    for table in ("engagements", "conversions", "activity"):
        _require_rows(table, tables[table], "every label built from it would be 0; check the export")
    send = pl.col("channel") != NO_SEND
    outside = (pl.col("ts") < log.log_start) | (pl.col("ts") >= log.log_end)
    raise_first(
        "opportunities",
        tables["opportunities"],
        [
            _missing("user_id"),
            _unknown_channel("channel", (*CHANNELS, NO_SEND)),
            (
                "ts",
                pl.col("ts").is_null() | outside,
                f"are outside the observation window [{log.log_start}, {log.log_end})",
            ),
            (
                "send_ts",
                send & (pl.col("send_ts").is_null() | (pl.col("send_ts") < pl.col("ts"))),
                "send before the decision ts (or lack send_ts)",
            ),
            ("send_ts", ~send & pl.col("send_ts").is_not_null(), "have a send_ts on a 'none' (no-send) row"),
            ("message_id", send & pl.col("message_id").is_null(), "are sends without a message_id"),
            ("hour", send & ~pl.col("hour").is_between(0, 23).fill_null(False), "are sends without an hour in 0..23"),
            (
                "send_ts",
                send
                & (
                    (pl.col("send_ts").dt.date() != pl.col("ts").dt.date())
                    | (pl.col("send_ts").dt.hour() != pl.col("hour"))
                ),
                "are sends not on the decision's day in their hour (send_ts falls on the day of ts, in 'hour')",
            ),
            (
                "propensity",
                pl.col("propensity").is_null() | ~pl.col("propensity").is_between(0.0, 1.0, closed="right"),
                "have a missing propensity or one outside (0, 1]",
            ),
        ],
    )
    for table, key in (("opportunities", "opportunity_id"), ("users", "user_id"), ("messages", "message_id")):
        _check_key(table, tables[table], key)
    raise_first(
        "engagements",
        tables["engagements"],
        [_missing("opportunity_id"), _missing("user_id"), _unknown_channel("channel", CHANNELS), _missing("ts")],
    )
    raise_first(
        "unsubscribes",
        tables["unsubscribes"],
        [_missing("user_id"), _unknown_channel("channel", CHANNELS), _missing("ts")],
    )
    finite = pl.col("value").cast(pl.Float64).is_finite()
    value = ("value", pl.col("value").is_null() | ~finite, "are missing or not finite")
    raise_first("conversions", tables["conversions"], [_missing("user_id"), _missing("ts"), value])
    raise_first("activity", tables["activity"], [_missing("user_id"), _missing("date")])
    unknown = tables["opportunities"].join(tables["users"].select("user_id"), on="user_id", how="anti")
    raise_first("opportunities", unknown, [("user_id", EVERY_ROW, "name a user missing from table 'users'")])
    sends = tables["opportunities"].filter(send)
    unknown = sends.join(tables["messages"].select("message_id"), on="message_id", how="anti")
    raise_first("opportunities", unknown, [("message_id", EVERY_ROW, "name a message missing from table 'messages'")])
    channels = tables["messages"].select(pl.col("channels").explode().alias("channels"))
    raise_first("messages", channels, [_unknown_channel("channels", CHANNELS)])
