"""`mtr simulate` writes the event-log contract, deterministically, obeying the world's rules."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from mtr.cli import main
from mtr.data.eventlog import open_event_log
from mtr.errors import InputError
from mtr.events import EVENT_TABLES, META_FILE, TIMESTAMP
from mtr.io import sha256_file
from mtr.sim.config import WorldConfig
from mtr.tables import check_columns


def fingerprints(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    args = ["simulate", "--users", "300", "--days", "7"]
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        main([*args, "--seed", seed, "--out", str(tmp_path / name)])
    first, again, other = (fingerprints(tmp_path / name) for name in "abc")
    assert len(first) == len(EVENT_TABLES) + 1 + 1 + 4 + 1  # tables, candidates, meta.json, truth/*, the marker
    assert first["candidates.parquet"] != other["candidates.parquet"]
    assert first == again, [k for k in first if first[k] != again[k]]
    assert first["opportunities.parquet"] != other["opportunities.parquet"]
    assert first["conversions.parquet"] != other["conversions.parquet"]


def test_tables_follow_the_event_log_contract(world_dir: Path, table: Callable[[str], pl.DataFrame]) -> None:
    for name, columns in EVENT_TABLES.items():
        frame = table(name)
        check_columns(name, frame.schema, columns)
        assert frame.height > 0, name
        for column, dtype in frame.schema.items():
            if isinstance(dtype, pl.Datetime):
                assert dtype == TIMESTAMP, (name, column)
    log = open_event_log(world_dir)  # build-dataset's own checks accept the folder
    assert log.log_end - log.log_start == timedelta(days=28 + 45)  # pre-period + decision days, no quiet follow-up


def test_observation_window_and_activity_span(world_dir: Path, table: Callable[[str], pl.DataFrame]) -> None:
    meta = json.loads((world_dir / META_FILE).read_text())
    assert meta["log_start"] == "2024-02-05T00:00:00+00:00"  # 28 days before the default start date
    assert meta["log_end"] == "2024-04-18T00:00:00+00:00"  # 45 decision days later: the policy runs to the end
    dates = table("activity")["date"]
    assert str(dates.min()) == "2024-02-05" and str(dates.max()) == "2024-04-17"
    opportunities = table("opportunities")
    assert opportunities.height == 1500 * 45 and opportunities["opportunity_id"].is_unique().all()
    assert (opportunities["ts"].dt.hour() == 0).all()
    log_end = datetime.fromisoformat(meta["log_end"])
    for name in ("engagements", "conversions", "unsubscribes"):
        assert table(name)["ts"].max() < log_end, name


def test_propensities_are_the_policy_probabilities(world_dir: Path, table: Callable[[str], pl.DataFrame]) -> None:
    from mtr.sim.oracle import Oracle

    opportunities = table("opportunities")
    assert ((opportunities["propensity"] > 0) & (opportunities["propensity"] <= 1)).all()
    candidates = Oracle.load(world_dir).eligible_actions()
    totals = candidates.group_by("opportunity_id").agg(pl.col("propensity").sum())["propensity"]
    assert totals.min() > 1 - 1e-9 and totals.max() < 1 + 1e-9
    logged = opportunities.join(
        candidates, on=["opportunity_id", "message_id", "channel", "hour"], nulls_equal=True, suffix="_policy"
    )
    assert logged.height == opportunities.height  # every logged action was eligible
    assert (logged["propensity"] == logged["propensity_policy"]).all()
    share = (opportunities["channel"] != "none").mean()
    assert 0.4 <= share <= 0.6


def test_world_rules_hold(world_dir: Path, table: Callable[[str], pl.DataFrame]) -> None:
    sends = table("opportunities").filter(pl.col("channel") != "none")
    web = table("users").filter(pl.col("platform") == "web")["user_id"]
    assert sends.filter(pl.col("user_id").is_in(web.implode()) & (pl.col("channel") == "push")).height == 0
    unsubscribes = table("unsubscribes")
    assert unsubscribes.height > 0
    after = sends.join(unsubscribes, on=["user_id", "channel"]).filter(pl.col("send_ts") > pl.col("ts_right"))
    assert after.height == 0  # nothing is sent on a channel after the user left it
    # Each unsubscribe follows a send on its channel by less than one hour.
    cause = unsubscribes.join(sends, on=["user_id", "channel"]).filter(
        pl.col("ts") - pl.col("send_ts") < timedelta(hours=1), pl.col("ts") >= pl.col("send_ts")
    )
    assert cause.height == unsubscribes.height
    gaps = sends.sort("send_ts").group_by("user_id", "channel").agg(pl.col("send_ts").diff().min())["send_ts"]
    assert gaps.drop_nulls().min() >= timedelta(hours=48)  # the per-channel frequency cap
    delays = table("engagements").join(sends, on="opportunity_id").select(pl.col("ts") - pl.col("send_ts"))
    assert delays.min().item() >= timedelta(0) and delays.max().item() < timedelta(hours=48)


def test_base_rates_in_documented_ranges(labels: pl.DataFrame) -> None:
    sends = labels.filter("is_send")
    assert 0.10 <= sends["label_engagement"].mean() <= 0.25
    assert 0.001 <= sends["p_unsubscribe"].mean() <= 0.006
    assert 0.01 <= labels["p_conversion"].mean() <= 0.03
    assert 0.60 <= labels["p_retention"].mean() <= 0.80
    by_channel = sends.group_by("channel").agg(pl.col("p_engagement").mean()).sort("p_engagement")["channel"]
    assert by_channel.to_list()[-1] == "in_app"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"exploration": 1.5}, "exploration"),
        ({"task_correlation": -0.1}, "task_correlation"),
        ({"hours": (1, 12, 23)}, "hours"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"live_messages": 40}, "live_messages"),
    ],
)
def test_bad_world_config_names_the_field(override: dict, field: str) -> None:
    with pytest.raises(InputError, match=f"'{field}'"):
        WorldConfig(**override)


def test_command_line_overrides_reach_the_world(tmp_path: Path) -> None:
    out = tmp_path / "events"
    main(["simulate", "--users", "50", "--days", "3", "--out", str(out), "--world.policy_id", "explore_all"])
    meta = json.loads((out / META_FILE).read_text())
    assert meta["config"]["world"]["policy_id"] == "explore_all"
    assert pl.read_parquet(out / "opportunities.parquet")["policy_id"].unique().to_list() == ["explore_all"]
    with pytest.raises(InputError, match="--users"):
        main(["simulate", "--users", "0", "--out", str(tmp_path / "none")])
    assert not (tmp_path / "none").exists()


def test_default_yaml_is_the_default_world(tmp_path: Path) -> None:
    config = Path(__file__).resolve().parents[2] / "configs" / "sim" / "default.yaml"
    out = tmp_path / "events"
    main(
        [
            "simulate",
            "--config",
            str(config),
            "--users",
            "40",
            "--days",
            "2",
            "--out",
            str(out),
            "--world.hours",
            "[9, 20]",
        ]
    )
    world = json.loads((out / META_FILE).read_text())["config"]["world"]
    assert world == {**dataclasses.asdict(WorldConfig()), "hours": [9, 20]}
    assert set(pl.read_parquet(out / "opportunities.parquet")["hour"].drop_nulls().to_list()) <= {9, 20}
