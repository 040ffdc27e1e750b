"""Bad event logs fail early, naming the table and the column, and leave no output behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from handmade_log import ENGAGEMENT_SCHEMA, Tables, at, events, handmade_tables

from mtr.data.build import BuildConfig, build_dataset_from_events
from mtr.errors import InputError

# The hand-made logs are days long: splits over every day, touching (the matured rule needs months).
EVERY_DAY = BuildConfig(matured_splits=False, embargo_days=1)


def _set(table: str, column: str, value: object, row: int = 0) -> Callable[[Tables], Tables]:
    """An edit that sets one cell of one table."""

    def edit(tables: Tables) -> Tables:
        frame = tables[table]
        cell = pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column))
        return {**tables, table: frame.with_columns(cell.cast(frame.schema[column]).alias(column))}

    return edit


def _replace(table: str, edit: Callable[[pl.DataFrame], pl.DataFrame]) -> Callable[[Tables], Tables]:
    return lambda tables: {**tables, table: edit(tables[table])}


BAD_TABLES = {
    "missing column": (
        _replace("opportunities", lambda f: f.drop("propensity")),
        "table 'opportunities' has no column 'propensity'",
    ),
    "wrong dtype": (
        _replace("conversions", lambda f: f.with_columns(pl.col("value").cast(pl.String))),
        "table 'conversions' column 'value' has dtype String",
    ),
    "naive timestamps": (
        _replace("engagements", lambda f: f.with_columns(pl.col("ts").dt.replace_time_zone(None))),
        "table 'engagements' column 'ts' has dtype",
    ),
    "unknown opportunity channel": (
        _set("opportunities", "channel", "sms"),
        "table 'opportunities' column 'channel'",
    ),
    "unknown unsubscribe channel": (
        _set("unsubscribes", "channel", "fax"),
        "table 'unsubscribes' column 'channel'",
    ),
    "send before decision": (
        _set("opportunities", "send_ts", at(0, 5)),
        "table 'opportunities' column 'send_ts': 1 row(s) send before the decision ts",
    ),
    "decision before log_start": (
        _set("opportunities", "ts", at(-1)),
        "table 'opportunities' column 'ts': 1 row(s) are outside the observation window",
    ),
    "decision at log_end": (
        _set("opportunities", "ts", at(45)),
        "table 'opportunities' column 'ts': 1 row(s) are outside the observation window",
    ),
    "engagement before its send": (
        _set("engagements", "ts", at(0, 8)),
        "table 'engagements' column 'ts': 1 row(s) are before the send they refer to",
    ),
    "engagement of a no-send": (
        _replace("engagements", lambda f: pl.concat([f, events(ENGAGEMENT_SCHEMA, (3, 1, "push", at(4, 7), "open"))])),
        "table 'engagements' column 'opportunity_id'",
    ),
    "duplicate opportunity": (
        _set("opportunities", "opportunity_id", 2),
        "table 'opportunities' column 'opportunity_id': 1 row(s) are missing or repeat a key (first: 2)",
    ),
    "unknown user": (
        _set("opportunities", "user_id", 99),
        "table 'opportunities' column 'user_id': 1 row(s) name a user missing from table 'users'",
    ),
    "unknown message": (
        _set("opportunities", "message_id", 77),
        "table 'opportunities' column 'message_id': 1 row(s) name a message missing from table 'messages'",
    ),
    "propensity zero": (_set("opportunities", "propensity", 0.0), "table 'opportunities' column 'propensity'"),
    "propensity missing": (
        _set("opportunities", "propensity", None),
        "table 'opportunities' column 'propensity': 1 row(s) have a missing propensity",
    ),
    "conversion value NaN": (
        _set("conversions", "value", float("nan")),
        "table 'conversions' column 'value': 1 row(s) are missing or not finite",
    ),
    "conversion value infinite": (_set("conversions", "value", float("inf")), "column 'value': 1 row(s)"),
    "no engagements": (_replace("engagements", lambda f: f.clear()), "table 'engagements' is empty"),
    "no conversions": (_replace("conversions", lambda f: f.clear()), "table 'conversions' is empty"),
    "no activity": (_replace("activity", lambda f: f.clear()), "table 'activity' is empty"),
    "empty log": (_replace("opportunities", lambda f: f.clear()), "table 'opportunities' is empty"),
    "two opportunity days": (
        lambda tables: {
            **tables,
            "opportunities": tables["opportunities"].filter(pl.col("opportunity_id").is_in([1, 2])),
            "engagements": tables["engagements"].filter(pl.col("opportunity_id").is_in([1, 2])),
        },
        "table 'opportunities' column 'ts' spans 2 day(s)",
    ),
    "send on the next day": (  # sends happen on their decision's day: the hour alone names the action
        _replace("opportunities", lambda f: f.with_columns(pl.col("send_ts") + pl.duration(days=1))),
        "table 'opportunities' column 'send_ts': 6 row(s) are sends not on the decision's day in their hour",
    ),
    "unknown message channel": (
        _replace("messages", lambda f: f.with_columns(pl.lit(["push", "sms"]).alias("channels"))),
        "table 'messages' column 'channels'",
    ),
    "decisions lost mid-log": (  # engagements of decisions the export lost, weeks after the log's start
        _replace("opportunities", lambda f: f.filter(pl.col("opportunity_id") != 6)),
        "table 'engagements' column 'opportunity_id': 1 row(s) refer to no opportunity yet come 7 days or more",
    ),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_tables_fail_naming_table_and_column(case: str, write_log, tmp_path: Path) -> None:
    edit, message = BAD_TABLES[case]
    events_dir = write_log(edit(handmade_tables()))
    out = tmp_path / "dataset"
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_dataset_from_events(events_dir, out, EVERY_DAY)
    assert not out.exists()


def _meta(text: str | None) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        if text is None:
            (folder / "meta.json").unlink()
        else:
            (folder / "meta.json").write_text(text)

    return edit


BAD_FOLDERS = {
    "missing table": (lambda folder: (folder / "unsubscribes.parquet").unlink(), "table 'unsubscribes' not found"),
    "meta missing": (_meta(None), "meta.json not found"),
    "meta not json": (_meta("{log_start: "), "meta.json is not valid JSON"),
    "meta field missing": (_meta(json.dumps({"log_start": "2024-01-01T00:00:00+00:00"})), "field 'log_end' is missing"),
    "meta bad timestamp": (
        _meta(json.dumps({"log_start": "yesterday", "log_end": "2024-02-15"})),
        "field 'log_start' is not an ISO timestamp",
    ),
    "meta window reversed": (
        _meta(json.dumps({"log_start": "2024-02-15", "log_end": "2024-01-01"})),
        "field 'log_end' .* must be after 'log_start'",
    ),
    "table not parquet": (
        lambda folder: (folder / "activity.parquet").write_text("not parquet"),
        "table 'activity' at .* is not a readable Parquet file",
    ),
}


@pytest.mark.parametrize("case", BAD_FOLDERS)
def test_bad_event_folders_fail_naming_the_file_or_field(case: str, write_log, tmp_path: Path) -> None:
    edit, message = BAD_FOLDERS[case]
    folder = write_log()
    edit(folder)
    with pytest.raises(InputError, match=message):
        build_dataset_from_events(folder, tmp_path / "dataset", EVERY_DAY)


def test_a_failed_build_keeps_the_previous_dataset_and_leaves_no_temporary_folder(write_log, tmp_path: Path) -> None:
    out = tmp_path / "dataset"
    build_dataset_from_events(write_log(), out, EVERY_DAY)
    before = {path.name: path.stat().st_size for path in out.iterdir()}
    # Fails per partition, after the whole-table checks have passed and parts were written.
    bad = _set("engagements", "ts", at(0, 8))(handmade_tables())
    with pytest.raises(InputError, match="table 'engagements' column 'ts'"):
        build_dataset_from_events(write_log(bad), out, replace(EVERY_DAY, partitions=2))
    assert {path.name: path.stat().st_size for path in out.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir() if "dataset" in path.name) == ["dataset"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("train_fraction", 1.0), ("validation_fraction", 0.35), ("partitions", 0), ("fit_rows", 0), ("days_since_cap", 0)],
)
def test_bad_config_values_name_the_field(field: str, value: float) -> None:
    with pytest.raises(InputError, match=f"field '{field}'"):
        BuildConfig(**{field: value})
