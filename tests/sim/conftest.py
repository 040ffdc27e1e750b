"""A small simulated world shared by the simulator tests, and labels derived from it by the label rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from mtr.cli import main

SMALL_WORLD = ["--users", "1500", "--days", "45", "--seed", "3"]  # 45 days: retention matures for the first 17


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1500 users x 45 days, simulated through the `mtr simulate` command line."""
    out = tmp_path_factory.mktemp("sim") / "events"
    main(["simulate", *SMALL_WORLD, "--out", str(out)])
    return out


def read(folder: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(folder / f"{table}.parquet")


@pytest.fixture(scope="session")
def table(world_dir: Path) -> Callable[[str], pl.DataFrame]:
    """Read a table of the small world by name, e.g. `table("users")` or `table("truth/user_traits")`."""
    return lambda name: read(world_dir, name)


@pytest.fixture(scope="session")
def labels(world_dir: Path, windows_of: Callable[[Path], pl.DataFrame]) -> pl.DataFrame:
    """Every opportunity with its labels derived from the events by the rules of build-dataset, and its truth."""
    window = timedelta(hours=48)
    rows = windows_of(world_dir)
    sends = rows.filter("is_send")
    engaged = sends.join(read(world_dir, "engagements"), on="opportunity_id").filter(
        pl.col("ts_right") < pl.col("send_ts") + window
    )
    left = sends.join(read(world_dir, "unsubscribes"), on=["user_id", "channel"]).filter(
        pl.col("ts_right").is_between(pl.col("send_ts"), pl.col("send_ts") + window, closed="left")
    )
    converted = rows.join(read(world_dir, "conversions"), on="user_id").filter(
        pl.col("ts_right").is_between("t0", "end", closed="left")
    )
    active = rows.join(read(world_dir, "activity"), on="user_id").filter(
        pl.col("date").is_between(pl.col("day") + timedelta(days=22), pl.col("day") + timedelta(days=28))
    )

    def hit(frame: pl.DataFrame) -> pl.Expr:
        return pl.col("opportunity_id").is_in(frame["opportunity_id"].implode()).cast(pl.Int8)

    truth = pl.read_parquet(world_dir / "truth" / "logged_probabilities.parquet")
    return rows.with_columns(
        label_engagement=hit(engaged),
        label_unsubscribe=hit(left),
        label_conversion=hit(converted),
        label_retention=hit(active),
    ).join(truth, on="opportunity_id")
