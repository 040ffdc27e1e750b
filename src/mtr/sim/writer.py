"""Simulate a world and write its event logs, truth files and meta.json into one folder."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mtr.events import CANDIDATES_FILE, EVENT_TABLES, META_FILE
from mtr.io import atomic_output_dir, write_json
from mtr.sim.base_rates import summary
from mtr.sim.config import PRE_PERIOD_DAYS, WorldConfig
from mtr.sim.draws import activity_frame, conversion_frame, engagement_frame, opportunities_frame, unsubscribe_frame
from mtr.sim.engine import SimulatedLog, run_days

TRUTH_DIR = "truth"


def simulate_tables(
    n_users: int, days: int, seed: int, world: WorldConfig
) -> tuple[SimulatedLog, dict[str, pl.DataFrame]]:
    """Run the world and build every event table (contract order) and truth table (`truth/...`)."""
    rng = np.random.default_rng(seed)
    log = run_days(rng, n_users, days, world)
    tables = {
        "users": log.users.users_frame(),
        "messages": log.catalog.messages_frame(),
        "opportunities": opportunities_frame(log),
        "engagements": engagement_frame(log, rng),
        "conversions": conversion_frame(log, rng),
        "unsubscribes": unsubscribe_frame(log, rng),
        "activity": activity_frame(log, rng),
    }
    return log, tables


def truth_tables(log: SimulatedLog, opportunities: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The simulator's knowledge that no real log has."""
    truth = log.truth.logged_probabilities()  # (day, user) order = opportunity order
    logged = pl.DataFrame({"opportunity_id": opportunities["opportunity_id"], **truth.columns()})
    return {
        "logged_probabilities": logged,
        "user_traits": log.users.traits_frame(),
        "messages": log.catalog.quality_frame(),
        "live_messages": log.catalog.schedule_frame(log.start_us),
    }


def write_simulation(
    out: Path, n_users: int, days: int, seed: int, world: WorldConfig, overwrite: bool = False
) -> dict[str, Any]:
    """Simulate and write `out/{table}.parquet` (the candidate table included), `out/truth/*.parquet` and
    `out/meta.json` atomically (an existing
    `out` only when it is an earlier simulation's, or with `overwrite`: `mtr.io.check_output_dir`).

    Returns:
        the summary figures (row counts, base rates, task logit correlation).
    """
    log, tables = simulate_tables(n_users, days, seed, world)
    truth = truth_tables(log, tables["opportunities"])
    with atomic_output_dir(out, "simulate", overwrite) as folder:
        for name in EVENT_TABLES:
            _write(tables[name], folder / f"{name}.parquet")
        (folder / TRUTH_DIR).mkdir()
        for name, frame in truth.items():
            _write(frame, folder / TRUTH_DIR / f"{name}.parquet")
        figures = summary(tables, truth["logged_probabilities"])
        write_json(folder / META_FILE, _meta(log, n_users, days, seed, figures))
        _write(logged_candidates(folder), folder / CANDIDATES_FILE)
    return figures


def logged_candidates(folder: Path) -> pl.DataFrame:
    """The log's candidate table, as a platform's logging system would record it: every action the logging
    policy could take at each decision, with its probability (the oracle's eligible actions)."""
    from mtr.sim.oracle import Oracle  # the oracle reads the folder this module writes

    return Oracle.load(folder).eligible_actions()


def _write(frame: pl.DataFrame, path: Path) -> None:
    # Fixed codec and level, no timestamps in the file: the same frame gives the same bytes.
    frame.write_parquet(path, compression="zstd", compression_level=3, statistics=True)


def _iso(epoch_us: int) -> str:
    return datetime.fromtimestamp(epoch_us / 1e6, tz=UTC).isoformat()


def _meta(log: SimulatedLog, n_users: int, days: int, seed: int, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "log_start": _iso(log.log_start_us),
        "log_end": _iso(log.log_end_us),
        "first_opportunity_ts": _iso(log.start_us),
        "pre_period_days": PRE_PERIOD_DAYS,
        "source": "mtr simulate",
        "config": {"users": n_users, "days": days, "seed": seed, "world": dataclasses.asdict(log.world)},
        "summary": figures,
    }
