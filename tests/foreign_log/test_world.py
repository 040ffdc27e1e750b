"""The foreign log's own invariants: what an end-to-end test built on it relies on, checked on the written files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from foreign_log import world
from foreign_log.world import FEATURES_YAML, generate_foreign_log, write_foreign_log

TABLES = ("users", "messages", "opportunities", "candidates", "engagements", "conversions", "unsubscribes", "activity")
CHANNELS = ("push", "email", "in_app")
SIMULATOR_NAMES = (
    "country",
    "platform",
    "plan",
    "age_bucket",
    "message_type",
    "topic",
    "has_discount",
    "headline_length",
)
UTC_US = pl.Datetime("us", "UTC")
ACTION = ["opportunity_id", "message_id", "channel", "hour"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default log (300 users, 35 days, seed 0), as the end-to-end test writes it."""
    return write_foreign_log(tmp_path_factory.mktemp("foreign") / "events")


@pytest.fixture(scope="module")
def log(folder: Path) -> dict[str, pl.DataFrame]:
    return {table: pl.read_parquet(folder / f"{table}.parquet") for table in TABLES}


@pytest.fixture(scope="module")
def window(folder: Path) -> tuple[datetime, datetime]:
    meta = json.loads((folder / "meta.json").read_text())
    return datetime.fromisoformat(meta["log_start"]), datetime.fromisoformat(meta["log_end"])


@pytest.fixture(scope="module")
def sends(log: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return log["opportunities"].filter(pl.col("channel") != "none")


def test_same_seed_same_bytes_other_seed_other_log(tmp_path: Path) -> None:
    """A test that reruns must see the same log; a seed must matter."""
    first = write_foreign_log(tmp_path / "a", users=40, days=6, seed=3)
    again = write_foreign_log(tmp_path / "b", users=40, days=6, seed=3)
    other = write_foreign_log(tmp_path / "c", users=40, days=6, seed=4)
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted([f"{t}.parquet" for t in TABLES] + ["meta.json"])
    assert all((first / n).read_bytes() == (again / n).read_bytes() for n in names)
    assert (first / "opportunities.parquet").read_bytes() != (other / "opportunities.parquet").read_bytes()


def test_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "stale.parquet").write_bytes(b"")
    with pytest.raises(FileExistsError):
        write_foreign_log(tmp_path, users=5, days=2)


def test_window_dtypes_and_keys(log: dict[str, pl.DataFrame], window: tuple[datetime, datetime]) -> None:
    start, end = window
    assert start.isoformat() == "2025-03-01T00:00:00+00:00" and end - start == timedelta(days=35)
    for table, columns in {
        "users": ["signup_ts"],
        "messages": ["launched_ts"],
        "opportunities": ["ts", "send_ts"],
        "engagements": ["ts"],
        "conversions": ["ts"],
        "unsubscribes": ["ts"],
    }.items():
        for column in columns:
            assert log[table].schema[column] == UTC_US, (table, column)
    o = log["opportunities"]
    assert o.schema["hour"] == pl.Int32 and log["candidates"].schema["hour"] == pl.Int32
    assert log["messages"].schema["channels"] == pl.List(pl.String)
    assert log["activity"].schema["date"] == pl.Date and log["activity"].schema["sessions"] == pl.Int32
    for table, key in (("users", ["user_id"]), ("messages", ["message_id"]), ("opportunities", ["opportunity_id"])):
        assert not log[table].select(key).is_duplicated().any(), table
    assert not log["activity"].select("user_id", "date").is_duplicated().any()
    assert not log["candidates"].select(ACTION).is_duplicated().any()
    for table in ("opportunities", "engagements", "conversions", "unsubscribes"):
        assert log[table]["ts"].min() >= start and log[table]["ts"].max() < end, table
    # The logging policy runs to the end: both decisions on the last day, for every signed-up user.
    last = o.filter(pl.col("ts").dt.date() == (end - timedelta(days=1)).date())
    assert sorted(last["ts"].dt.hour().unique().to_list()) == [7, 15]
    assert set(o["policy_id"].unique()) == {"foreign_v1"}
    assert log["conversions"]["value"].is_finite().all() and (log["conversions"]["value"] > 0).all()


def test_taken_action_is_a_candidate_with_its_propensity(log: dict[str, pl.DataFrame]) -> None:
    o, c = log["opportunities"], log["candidates"]
    taken = o.join(c, on=ACTION, how="left", nulls_equal=True, suffix="_candidate")
    assert taken.height == o.height
    assert (taken["propensity"] == taken["propensity_candidate"]).all()
    per_opportunity = c.group_by("opportunity_id").agg(
        pl.col("propensity").sum().alias("total"),
        (pl.col("channel") == "none").sum().alias("nones"),
        pl.len().alias("n"),
    )
    assert per_opportunity.height == o.height
    assert ((per_opportunity["total"] - 1.0).abs() < 1e-9).all()
    assert (per_opportunity["nones"] == 1).all()
    assert ((c["propensity"] > 0) & (c["propensity"] <= 1)).all()
    assert 20 <= per_opportunity["n"].mean() <= 60
    none = c.filter(pl.col("channel") == "none")
    assert none["message_id"].is_null().all() and none["hour"].is_null().all()


def test_candidates_are_eligible(log: dict[str, pl.DataFrame]) -> None:
    """Launched, on an allowed channel, subscribed at ts, and an hour still ahead."""
    o, m = log["opportunities"], log["messages"]
    c = (
        log["candidates"]
        .filter(pl.col("channel") != "none")
        .join(o.select("opportunity_id", "user_id", "ts"), on="opportunity_id")
        .join(m, on="message_id")
    )
    assert (c["launched_ts"] <= c["ts"]).all()
    assert c.select(pl.col("channels").list.contains(pl.col("channel")).all()).item()
    assert (c["hour"] > c["ts"].dt.hour()).all()
    assert set(c["hour"].unique()) == {8, 12, 18, 21}
    left = c.join(log["unsubscribes"], on=["user_id", "channel"], suffix="_unsubscribe")
    assert left.height > 0 and (left["ts_unsubscribe"] >= left["ts"]).all()
    # Some templates launch inside the window and are offered only from then on.
    assert (m["launched_ts"] > o["ts"].min()).sum() >= 5


def test_sends_follow_the_decision_and_the_subscription(log: dict[str, pl.DataFrame], sends: pl.DataFrame) -> None:
    o = log["opportunities"]
    assert (sends["send_ts"] >= sends["ts"]).all()
    on_grid = pl.col("send_ts") == pl.col("ts").dt.truncate("1d") + pl.duration(hours=pl.col("hour"))
    assert sends.select(on_grid.all()).item()
    nothing = o.filter(pl.col("channel") == "none")
    assert nothing.select(pl.col("message_id", "hour", "send_ts").is_null().all()).row(0) == (True, True, True)
    after = sends.join(log["unsubscribes"], on=["user_id", "channel"]).filter(pl.col("send_ts") > pl.col("ts_right"))
    assert after.is_empty()
    assert not log["unsubscribes"].select("user_id", "channel").is_duplicated().any()


def test_no_send_after_an_unsubscribe_even_when_users_leave_often(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt-outs made far likelier (~25% of sends), so that the rare orders (an opt-out while a send on its
    channel is scheduled, or after the next decision) would show up: no later send or candidate uses the channel."""
    monkeypatch.setattr(world, "UNSUBSCRIBE_BASE", np.array([-1.0, -1.0, -1.0]))
    tables = generate_foreign_log(users=150, days=12, seed=1)
    o, unsubscribes = tables["opportunities"], tables["unsubscribes"]
    assert unsubscribes.height > 100
    assert not unsubscribes.select("user_id", "channel").is_duplicated().any()
    sent = o.filter(pl.col("channel") != "none").join(unsubscribes, on=["user_id", "channel"], suffix="_unsubscribe")
    assert sent.filter(pl.col("send_ts") > pl.col("ts_unsubscribe")).is_empty()
    # Each opt-out follows a send on its channel (the latest one there) by less than 48 h.
    send_times = o.filter(pl.col("channel") != "none").select("user_id", "channel", pl.col("send_ts").alias("ts"))
    cause = unsubscribes.sort("ts").join_asof(
        send_times.with_columns(send_ts=pl.col("ts")).sort("ts"),
        on="ts",
        by=["user_id", "channel"],
        check_sortedness=False,
    )
    assert (cause["ts"] - cause["send_ts"] < timedelta(hours=48)).all()
    candidates = (
        tables["candidates"]
        .join(o.select("opportunity_id", "user_id", "ts"), on="opportunity_id")
        .join(unsubscribes, on=["user_id", "channel"], suffix="_unsubscribe")
    )
    assert candidates.filter(pl.col("ts") > pl.col("ts_unsubscribe")).is_empty()


def test_nothing_before_signup(log: dict[str, pl.DataFrame]) -> None:
    users = log["users"].select("user_id", "signup_ts")
    late = users.filter(pl.col("signup_ts") > log["opportunities"]["ts"].min())
    assert 0.1 <= late.height / users.height <= 0.3
    for table, column in (("opportunities", "ts"), ("engagements", "ts"), ("conversions", "ts")):
        joined = log[table].join(users, on="user_id")
        assert (joined[column] > joined["signup_ts"]).all(), table
    active = log["activity"].join(users, on="user_id")
    assert (active["date"] >= active["signup_ts"].dt.date()).all()


def test_engagements_refer_to_sends_or_to_the_time_before_the_log(
    log: dict[str, pl.DataFrame], sends: pl.DataFrame, window: tuple[datetime, datetime]
) -> None:
    e = log["engagements"]
    known = e.join(sends.select("opportunity_id", "user_id", "channel", "send_ts"), on="opportunity_id")
    assert (known["user_id"] == known["user_id_right"]).all() and (known["channel"] == known["channel_right"]).all()
    assert (known["ts"] >= known["send_ts"]).all()
    orphans = e.join(log["opportunities"].select("opportunity_id"), on="opportunity_id", how="anti")
    assert orphans.height + known.height == e.height
    assert 40 <= orphans.height <= 70
    start = window[0]
    assert (orphans["ts"] >= start).all() and (orphans["ts"] < start + timedelta(days=2)).all()
    assert set(e["kind"].unique()) == {"open", "click"}


def test_outcome_rates_and_positives_on_every_channel(log: dict[str, pl.DataFrame], sends: pl.DataFrame) -> None:
    """Every task of the dataset built from it has positives: engagement, conversion and unsubscribe per channel,
    plus organic conversions and activity (retention)."""
    o = log["opportunities"]
    assert 0.25 <= sends.height / o.height <= 0.45
    engaged = sends.join(log["engagements"].select("opportunity_id").unique(), on="opportunity_id", how="semi")
    within_7d = (
        sends.join(log["conversions"], on="user_id", suffix="_conversion")
        .filter(pl.col("ts_conversion").is_between(pl.col("send_ts"), pl.col("send_ts") + pl.duration(days=7)))
        .select("opportunity_id", "channel")
        .unique()
    )
    unsubscribed = log["unsubscribes"]
    assert 0.05 <= engaged.height / sends.height <= 0.25
    assert 0.02 <= within_7d.height / sends.height <= 0.12
    assert 0.003 <= unsubscribed.height / sends.height <= 0.015
    for channel in CHANNELS:
        for frame in (engaged, within_7d, unsubscribed):
            assert (frame["channel"] == channel).sum() >= 5, channel
    assert (unsubscribed["channel"] == "push").sum() == max((unsubscribed["channel"] == c).sum() for c in CHANNELS)
    never_sent = log["conversions"].join(sends.select("user_id").unique(), on="user_id", how="anti")
    first_send = sends.group_by("user_id").agg(pl.col("send_ts").min())
    before_any_send = log["conversions"].join(first_send, on="user_id").filter(pl.col("ts") < pl.col("send_ts"))
    assert never_sent.height + before_any_send.height > 0  # organic purchases exist
    assert 0.2 <= log["activity"].height / (log["users"].height * 35) <= 0.7


def test_app_version_drifts(log: dict[str, pl.DataFrame]) -> None:
    o = log["opportunities"]
    share = o.group_by(pl.col("ts").dt.date() < pl.col("ts").dt.date().min() + timedelta(days=7)).agg(
        (pl.col("app_version") == "6.0").mean()
    )
    early = share.filter(pl.col("ts"))["app_version"].item()
    late = share.filter(~pl.col("ts"))["app_version"].item()
    assert early < 0.1 < 0.5 < late
    assert set(o["app_version"].unique()) == {"5.1", "5.2", "6.0"}


def test_own_attributes_only_and_declared_features_exist(log: dict[str, pl.DataFrame]) -> None:
    """No simulator attribute name anywhere; every declared feature is a column of its table."""
    for table, frame in log.items():
        for column in frame.columns:
            assert not any(name in column for name in SIMULATOR_NAMES), (table, column)
    declared = yaml.safe_load(FEATURES_YAML.read_text())
    for table in ("users", "messages", "opportunities"):
        names = [*declared[table]["sparse"], *declared[table]["dense"]]
        assert set(names) <= set(log[table].columns), table
        assert not any(s in n for n in names for s in SIMULATOR_NAMES)
    assert log["users"].schema["subscription_tier"] == pl.Int64
    assert log["users"].schema["account_age_months"] == pl.Float64
    assert log["messages"].schema["creative_id"] == pl.Int64 and log["messages"].schema["body_words"] == pl.Int32
    assert log["messages"]["campaign"].n_unique() == 6 and log["messages"].height == 25
