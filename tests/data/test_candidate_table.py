"""A log's candidate table, as a user of `mtr build-dataset` meets it: a bad table is refused by name, before
any output is written; a good one is kept in the dataset for exactly the split rows; `possible_actions` lists,
by the contract's rules, every action the log's own candidates could have been.

Bad tables are made by editing one decision of a good foreign log's candidates (tests/foreign_log/world.py:
decisions at 07:00 and 15:00 UTC, send hours 8, 12, 18 and 21, messages with launched_ts, some launched
mid-log, and unsubscribes).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from foreign_log.world import FEATURES_YAML, HOUR_GRID, write_foreign_log
from mtr.cli import main
from mtr.data.candidates import possible_actions
from mtr.data.eventlog import open_event_log
from mtr.data.feature_config import FeatureConfig
from mtr.errors import InputError
from mtr.schema import SPLITS, DatasetSchema

LATE_HOUR = 21  # a send hour never past at a 07:00 or 15:00 decision
SEND_HOURS = tuple(int(h) for h in HOUR_GRID)


@pytest.fixture(scope="module")
def good_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small foreign log with a full candidate table (40 users x 34 days: the shortest log whose retention
    labels mature with a 1-day embargo)."""
    return write_foreign_log(tmp_path_factory.mktemp("foreign") / "events", users=40, days=34, seed=3)


@pytest.fixture(scope="module")
def tables(good_log: Path) -> dict[str, pl.DataFrame]:
    """The good log's tables read once."""
    names = ("candidates", "opportunities", "messages", "unsubscribes")
    return {name: pl.read_parquet(good_log / f"{name}.parquet") for name in names}


def build(events: Path, out: Path, *extra: str) -> None:
    """`mtr build-dataset` of the foreign log with its feature config and a 1-day embargo."""
    main(["build-dataset", "--events", str(events), "--out", str(out), "--features", str(FEATURES_YAML)]
         + ["--build.embargo_days", "1", "--build.partitions", "1", *extra])  # fmt: skip


def with_candidates(good: Path, folder: Path, candidates: pl.DataFrame | None) -> Path:
    """A copy of the good log with `candidates` as its candidate table (None: no candidate table)."""
    shutil.copytree(good, folder)
    (folder / "candidates.parquet").unlink()
    if candidates is not None:
        candidates.write_parquet(folder / "candidates.parquet")
    return folder


def taken_sends(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The decisions whose taken action is a send, with that action and its logged propensity."""
    opportunities = tables["opportunities"]
    return opportunities.filter(pl.col("channel") != "none").select(
        "opportunity_id", "user_id", "ts", "message_id", "channel", "hour", "propensity"
    )


def candidate_row(opportunity_id: int, message_id: int | None, channel: str, hour: int | None) -> pl.DataFrame:
    """One candidate with propensity 0 (so that no propensity sum changes)."""
    return pl.DataFrame(
        {
            "opportunity_id": [opportunity_id],
            "message_id": [message_id],
            "channel": [channel],
            "hour": [hour],
            "propensity": [0.0],
        },
        schema={
            "opportunity_id": pl.Int64,
            "message_id": pl.Int64,
            "channel": pl.String,
            "hour": pl.Int32,
            "propensity": pl.Float64,
        },
    )


def launched_message(tables: dict[str, pl.DataFrame], channel: str, ts: datetime) -> int:
    """A message that allows `channel` and was launched by `ts`."""
    messages = tables["messages"].filter(pl.col("channels").list.contains(channel) & (pl.col("launched_ts") <= ts))
    return int(messages["message_id"][0])


# --- the bad tables: each edits one decision, and returns the message a user must read -----------------------


def taken_action_removed(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    taken = taken_sends(tables).row(0, named=True)
    keys = ["opportunity_id", "message_id", "channel", "hour"]
    edited = tables["candidates"].join(pl.DataFrame([taken]).select(keys), on=keys, how="anti")
    assert edited.height == tables["candidates"].height - 1
    opportunity = taken["opportunity_id"]
    return edited, (
        rf"column 'opportunity_id': 1 row\(s\) are decisions whose taken action is not among their candidates "
        rf"\(first: {opportunity}\)"
    )


def propensities_over_one(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    taken = taken_sends(tables).row(0, named=True)
    candidates = tables["candidates"].with_row_index("i")
    other = candidates.filter(
        (pl.col("opportunity_id") == taken["opportunity_id"])
        & ((pl.col("message_id") != taken["message_id"]) | (pl.col("channel") != taken["channel"]))
    )["i"][0]
    edited = candidates.with_columns(
        pl.when(pl.col("i") == other).then(1.0).otherwise(pl.col("propensity")).alias("propensity")
    ).drop("i")
    return edited, (
        rf"column 'opportunity_id': 1 row\(s\) are decisions whose column 'propensity' sums over 1 "
        rf"\(first: {taken['opportunity_id']}\)"
    )


def unsubscribed_channel(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    unsubscribes, opportunities = tables["unsubscribes"], tables["opportunities"]
    later = (
        unsubscribes.rename({"ts": "left_ts", "channel": "left_channel"})
        .join(opportunities.select("opportunity_id", "user_id", "ts"), on="user_id")
        .filter(pl.col("ts") > pl.col("left_ts"))
        .sort("ts")
    )
    assert later.height, "the log needs an unsubscribe followed by a decision of the same user"
    decision = later.row(0, named=True)
    channel = decision["left_channel"]
    message = launched_message(tables, channel, decision["ts"])
    added = candidate_row(decision["opportunity_id"], message, channel, LATE_HOUR)
    return pl.concat([tables["candidates"], added]), (
        rf"column 'channel': 1 row\(s\) are on a channel the user unsubscribed from before the decision "
        rf"\(first: {channel}\)"
    )


def hour_already_past(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    send = tables["candidates"].filter(pl.col("channel") != "none").row(0, named=True)
    added = candidate_row(send["opportunity_id"], send["message_id"], send["channel"], 3)
    return pl.concat([tables["candidates"], added]), (
        r"column 'hour': 1 row\(s\) are at an hour already past at the decision \(first: 3\)"
    )


def send_without_hour(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    send = tables["candidates"].filter(pl.col("channel") != "none").row(0, named=True)
    added = candidate_row(send["opportunity_id"], send["message_id"], send["channel"], None)
    return pl.concat([tables["candidates"], added]), r"column 'hour': 1 row\(s\) are sends without an hour in 0..23"


def second_none(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    decision = int(tables["candidates"]["opportunity_id"][0])
    added = candidate_row(decision, None, "none", None)
    return pl.concat([tables["candidates"], added]), (
        rf"column 'opportunity_id': 1 row\(s\) are decisions without exactly one 'none' candidate "
        rf"\(column 'channel'\) \(first: {decision}\)"
    )


def unknown_decision(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    unknown = int(tables["opportunities"]["opportunity_id"].max()) + 1_000
    added = candidate_row(unknown, None, "none", None).with_columns(propensity=pl.lit(1.0))
    return pl.concat([tables["candidates"], added]), (
        rf"column 'opportunity_id': 1 row\(s\) name a decision missing from 'opportunities' \(first: {unknown}\)"
    )


def before_launch(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    opportunities, candidates = tables["opportunities"], tables["candidates"]
    late = tables["messages"].sort("launched_ts", descending=True).row(0, named=True)
    # A decision before the launch whose user could still be sent on one of the message's channels.
    offered = candidates.join(opportunities.select("opportunity_id", "ts"), on="opportunity_id").filter(
        (pl.col("ts") < late["launched_ts"]) & pl.col("channel").is_in(late["channels"])
    )
    assert offered.height, "the log needs a decision before a message's launch"
    first = offered.row(0, named=True)
    added = candidate_row(first["opportunity_id"], late["message_id"], first["channel"], LATE_HOUR)
    return pl.concat([candidates, added]), (
        rf"column 'message_id': 1 row\(s\) offer a message before its launched_ts \(first: {late['message_id']}\)"
    )


def taken_propensity_differs(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    taken = taken_sends(tables).row(0, named=True)
    is_taken = (
        (pl.col("opportunity_id") == taken["opportunity_id"])
        & (pl.col("message_id") == taken["message_id"])
        & (pl.col("channel") == taken["channel"])
        & (pl.col("hour") == taken["hour"])
    )
    edited = tables["candidates"].with_columns(
        pl.when(is_taken).then(pl.col("propensity") / 2).otherwise(pl.col("propensity")).alias("propensity")
    )
    return edited, r"column 'propensity': 1 row\(s\) differ from the taken action's logged propensity"


def decision_without_candidates(tables: dict[str, pl.DataFrame]) -> tuple[pl.DataFrame, str]:
    decision = int(tables["opportunities"]["opportunity_id"][5])
    edited = tables["candidates"].filter(pl.col("opportunity_id") != decision)
    return edited, (
        rf"column 'opportunity_id': 1 row\(s\) are decisions of table 'opportunities' without candidates "
        rf"\(first shown\) \(first: {decision}\)"
    )


BAD_TABLES: dict[str, Callable[[dict[str, pl.DataFrame]], tuple[pl.DataFrame, str]]] = {
    "taken_action_removed": taken_action_removed,
    "propensities_over_one": propensities_over_one,
    "unsubscribed_channel": unsubscribed_channel,
    "hour_already_past": hour_already_past,
    "send_without_hour": send_without_hour,
    "second_none": second_none,
    "unknown_decision": unknown_decision,
    "before_launch": before_launch,
    "taken_propensity_differs": taken_propensity_differs,
    "decision_without_candidates": decision_without_candidates,
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_a_bad_candidate_table_is_refused_by_name_and_nothing_is_written(
    case: str, good_log: Path, tables: dict[str, pl.DataFrame], tmp_path: Path
) -> None:
    edited, problem = BAD_TABLES[case](tables)
    events = with_candidates(good_log, tmp_path / "events", edited)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    with pytest.raises(InputError, match=rf"^table 'candidates' {problem}"):
        build(events, outputs / "dataset")
    assert not any(outputs.iterdir()), "a refused build leaves no output folder behind"


@pytest.fixture(scope="module")
def good_dataset(good_log: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("good") / "dataset"
    build(good_log, out)
    return out


def test_the_dataset_keeps_the_candidates_of_exactly_its_split_rows(good_dataset: Path) -> None:
    schema = DatasetSchema.load(good_dataset)
    rows = pl.concat([pl.read_parquet(schema.split_path(good_dataset, split)) for split in SPLITS])
    candidates = pl.read_parquet(good_dataset / "candidates.parquet")
    assert set(candidates["row_id"].unique().to_list()) == set(rows["row_id"].to_list())
    assert schema.metadata["candidates"] == candidates.height
    per_decision = candidates.group_by("row_id").agg(
        pl.col("propensity").sum().alias("total"), (pl.col("channel") == "none").sum().alias("nones")
    )
    assert (per_decision["total"] - 1.0).abs().max() < 1e-6
    assert (per_decision["nones"] == 1).all()
    # Each decision's logged action is among its candidates, with the logged propensity.
    logged = rows.select("row_id", "message_id", "channel", "hour", "propensity")
    found = logged.join(candidates, on=["row_id", "message_id", "channel", "hour"], how="left", nulls_equal=True)
    assert found.height == rows.height and found["propensity_right"].null_count() == 0
    assert (found["propensity"] - found["propensity_right"]).abs().max() < 1e-6
    # The candidates carry their own message's declared attributes.
    assert {"campaign", "creative_id", "body_words"} <= set(candidates.columns)


def test_a_log_without_candidates_builds_without_a_candidates_file(good_log: Path, tmp_path: Path) -> None:
    events = with_candidates(good_log, tmp_path / "events", None)
    build(events, tmp_path / "dataset")
    schema = DatasetSchema.load(tmp_path / "dataset")
    assert not (tmp_path / "dataset" / "candidates.parquet").exists()
    assert schema.metadata["candidates"] is None
    assert all(schema.metadata["rows"][split] > 0 for split in SPLITS)


# --- possible_actions ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decisions(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """~200 of the log's decisions: every decision of the users who unsubscribed (some after the unsubscribe),
    then the earliest others (before the mid-log launches), morning and afternoon."""
    opportunities = tables["opportunities"].select("opportunity_id", "user_id", "ts")
    leavers = opportunities.filter(pl.col("user_id").is_in(tables["unsubscribes"]["user_id"].implode()))
    chosen = pl.concat([leavers.sort("ts").head(150), opportunities.sort("ts").head(50)]).unique("opportunity_id")
    return chosen.sort("opportunity_id")


@pytest.fixture(scope="module")
def possible(good_log: Path, decisions: pl.DataFrame) -> pl.DataFrame:
    log = open_event_log(good_log, FeatureConfig.load(FEATURES_YAML))
    return possible_actions(log, decisions.lazy(), hours=SEND_HOURS)


def test_possible_actions_obey_the_contracts_rules(
    possible: pl.DataFrame, decisions: pl.DataFrame, tables: dict[str, pl.DataFrame]
) -> None:
    assert set(possible.columns) >= {"opportunity_id", "user_id", "ts", "message_id", "channel", "hour", "propensity"}
    assert possible["propensity"].null_count() == possible.height  # a new decision's propensities are unknown
    # Exactly one "none" per decision, for every decision and no other.
    nones = possible.filter(pl.col("channel") == "none").group_by("opportunity_id").len()
    assert nones.height == decisions.height and (nones["len"] == 1).all()
    assert set(possible["opportunity_id"].unique().to_list()) == set(decisions["opportunity_id"].to_list())
    sends = possible.filter(pl.col("channel") != "none")
    # Never an hour already past at the decision, and only the given hours.
    assert set(sends["hour"].unique().to_list()) <= set(SEND_HOURS)
    assert (sends["hour"] >= sends["ts"].dt.hour()).all()
    assert (sends.filter(pl.col("ts").dt.hour() == 15)["hour"] >= 18).all()
    assert set(sends.filter(pl.col("ts").dt.hour() == 7)["hour"].unique().to_list()) == set(SEND_HOURS)
    # Only channels the message allows, and never a message before its launch.
    messages = tables["messages"].select("message_id", "channels", "launched_ts")
    with_message = sends.join(messages, on="message_id")
    assert with_message.height == sends.height
    assert with_message.select(pl.col("channels").list.contains(pl.col("channel")).all()).item()
    assert (with_message["launched_ts"] <= with_message["ts"]).all()
    # Never a channel the user had unsubscribed from before the decision.
    unsubscribed = tables["unsubscribes"].rename({"ts": "left_ts"})
    gone = sends.join(unsubscribed, on=["user_id", "channel"]).filter(pl.col("left_ts") < pl.col("ts"))
    assert gone.height == 0
    # ...and the rules were exercised: some chosen decisions came after an unsubscribe or before a launch.
    after_leaving = decisions.join(unsubscribed, on="user_id").filter(pl.col("left_ts") < pl.col("ts"))
    assert after_leaving.height > 0
    before_a_launch = decisions.join(messages, how="cross").filter(pl.col("ts") < pl.col("launched_ts"))
    assert before_a_launch.height > 0


def test_every_allowed_logged_candidate_is_a_possible_action(
    possible: pl.DataFrame, decisions: pl.DataFrame, tables: dict[str, pl.DataFrame]
) -> None:
    # The log also restricts messages by the user's language, which possible_actions cannot know: its actions are
    # a superset of the logged candidates (which all obey the contract's rules: the good log builds).
    keys = ["opportunity_id", "message_id", "channel", "hour"]
    logged = tables["candidates"].join(decisions.select("opportunity_id"), on="opportunity_id").select(keys)
    assert logged["opportunity_id"].n_unique() == decisions.height
    missing = logged.join(possible.select(keys), on=keys, how="anti", nulls_equal=True)
    assert missing.height == 0, f"logged candidates that possible_actions left out: {missing.head()}"
    assert possible.height > logged.height  # the language restriction is not one of the contract's rules
