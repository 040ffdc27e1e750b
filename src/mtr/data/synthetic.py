"""A fast, vectorised synthetic event log for benchmarks and tests of the build (not the simulator).

Outcomes here are independent coin flips: the log exercises the pipeline's shapes and sizes, not any
causal truth. Use `mtr simulate` for data whose outcomes depend on the actions.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mtr.events import META_FILE, TIMESTAMP
from mtr.io import atomic_output_dir
from mtr.schema import CHANNELS, NO_SEND

LOG_START = datetime(2024, 1, 1, tzinfo=UTC)
ACTIONS = (NO_SEND, *CHANNELS)
ACTION_SHARES = np.array([0.35, 0.3, 0.2, 0.15])
ENGAGEMENT_RATE = np.array([0.0, 0.08, 0.15, 0.2])  # per action in ACTIONS
SEND_HOURS = np.arange(9, 22)
MICROS_PER_HOUR = 3_600_000_000
MICROS_PER_DAY = 24 * MICROS_PER_HOUR


def write_event_log(
    folder: Path | str, tables: dict[str, pl.DataFrame], log_start: datetime, log_end: datetime
) -> Path:
    """Write `{table}.parquet` for each table and `meta.json` with the observation window, atomically."""
    with atomic_output_dir(folder, "synthetic event log") as tmp:
        for name, frame in tables.items():
            frame.write_parquet(tmp / f"{name}.parquet")
        meta = {"log_start": log_start.isoformat(), "log_end": log_end.isoformat()}
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return Path(folder)


def synthetic_event_log(
    users: int, days: int, opportunity_rate: float = 0.9, messages: int = 40, seed: int = 0
) -> tuple[dict[str, pl.DataFrame], datetime, datetime]:
    """Event tables with about `users * days * opportunity_rate` opportunities (at most one per user and day).

    Returns:
        (tables, log_start, log_end), the observation window being `days` days from 2024-01-01.
    """
    rng = np.random.default_rng(seed)
    start_us = int(LOG_START.timestamp() * 1e6)
    # Draws happen in a fixed order (opportunities, reactions, conversions, activity, users, messages), so the
    # same seed gives the same log.
    opportunities, sends = _opportunities(rng, users, days, opportunity_rate, messages, start_us)
    engagements, unsubscribes = _reactions(rng, sends)
    conversions = _conversions(rng, users, days, start_us)
    activity = _activity(rng, users, days, start_us)
    tables = {
        "users": _users(users, start_us, rng),
        "messages": _messages(messages, rng),
        "opportunities": opportunities,
        "engagements": engagements,
        "conversions": conversions,
        "unsubscribes": unsubscribes,
        "activity": activity,
    }
    return tables, LOG_START, LOG_START + timedelta(days=days)


def _opportunities(
    rng: np.random.Generator, users: int, days: int, rate: float, messages: int, start_us: int
) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """The opportunities table and, per opportunity, the arrays the reactions need (user, action, channel,
    send_ts in epoch microseconds, is_send)."""
    grid = np.flatnonzero(rng.random(users * days) < rate)
    day, user = np.divmod(grid, users)
    n = grid.size
    ts = start_us + day * MICROS_PER_DAY + 6 * MICROS_PER_HOUR + rng.integers(0, 2 * MICROS_PER_HOUR, n)
    action = rng.choice(len(ACTIONS), n, p=ACTION_SHARES)
    is_send = action > 0
    hour = rng.choice(SEND_HOURS, n)
    send_ts = start_us + day * MICROS_PER_DAY + hour * MICROS_PER_HOUR
    channel = np.array(ACTIONS)[action]
    frame = pl.DataFrame(
        {
            "opportunity_id": np.arange(n, dtype=np.int64),
            "user_id": user.astype(np.int64),
            "ts": _timestamps(ts),
            "policy_id": pl.repeat("synthetic_v1", n, eager=True),
            "message_id": pl.Series(rng.integers(0, messages, n)).set(pl.Series(~is_send), None),
            "channel": channel,
            "hour": pl.Series(hour.astype(np.int32)).set(pl.Series(~is_send), None),
            "send_ts": _timestamps(send_ts).set(pl.Series(~is_send), None),
            "propensity": ACTION_SHARES[action] / np.where(is_send, messages * SEND_HOURS.size, 1),
        }
    )
    return frame, {"user": user, "action": action, "channel": channel, "send_ts": send_ts, "is_send": is_send}


def _reactions(rng: np.random.Generator, drawn: dict[str, np.ndarray]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Engagements (a coin flip per send, by channel) and unsubscribes (0.3 % of sends, within 72 h)."""
    user, channel, send_ts = drawn["user"], drawn["channel"], drawn["send_ts"]
    sends = np.flatnonzero(drawn["is_send"])
    engaged = sends[rng.random(sends.size) < ENGAGEMENT_RATE[drawn["action"][sends]]]
    engagements = pl.DataFrame(
        {
            "opportunity_id": engaged.astype(np.int64),
            "user_id": user[engaged].astype(np.int64),
            "channel": channel[engaged],
            "ts": _timestamps(send_ts[engaged] + rng.exponential(3 * MICROS_PER_HOUR, engaged.size).astype(np.int64)),
            "kind": rng.choice(["open", "click"], engaged.size, p=[0.7, 0.3]),
        }
    )
    unsubscribed = sends[rng.random(sends.size) < 0.003]
    unsubscribes = pl.DataFrame(
        {
            "user_id": user[unsubscribed].astype(np.int64),
            "channel": channel[unsubscribed],
            "ts": _timestamps(send_ts[unsubscribed] + rng.integers(0, 72 * MICROS_PER_HOUR, unsubscribed.size)),
        }
    )
    return engagements, unsubscribes


def _conversions(rng: np.random.Generator, users: int, days: int, start_us: int) -> pl.DataFrame:
    n_conversions = rng.poisson(0.05 * days * users)
    return pl.DataFrame(
        {
            "user_id": rng.integers(0, users, n_conversions, dtype=np.int64),
            "ts": _timestamps(start_us + rng.integers(0, days * MICROS_PER_DAY, n_conversions)),
            "value": rng.lognormal(3.0, 1.0, n_conversions),
        }
    )


def _activity(rng: np.random.Generator, users: int, days: int, start_us: int) -> pl.DataFrame:
    active_day, active_user = np.divmod(np.flatnonzero(rng.random(users * days) < 0.4), users)
    return pl.DataFrame(
        {
            "user_id": active_user.astype(np.int64),
            "date": pl.Series(active_day + start_us // MICROS_PER_DAY).cast(pl.Int32).cast(pl.Date),
            "sessions": rng.integers(1, 6, active_day.size, dtype=np.int32),
        }
    )


def _users(users: int, start_us: int, rng: np.random.Generator) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": np.arange(users, dtype=np.int64),
            "signup_ts": _timestamps(start_us - rng.integers(0, 700 * MICROS_PER_DAY, users)),
            "country": rng.choice(["us", "gb", "de", "fr", "br", "in"], users),
            "platform": rng.choice(["ios", "android", "web"], users),
            "plan": rng.choice(["free", "trial", "premium"], users, p=[0.7, 0.1, 0.2]),
            "age_bucket": rng.choice(["18-24", "25-34", "35-44", "45-54", "55+"], users),
        }
    )


def _messages(messages: int, rng: np.random.Generator) -> pl.DataFrame:
    kinds = ["upsell_offer", "content_recommendation", "reminder", "product_news"]
    return pl.DataFrame(
        {
            "message_id": np.arange(messages, dtype=np.int64),
            "message_type": rng.choice(kinds, messages),
            "topic": rng.choice([f"topic_{i}" for i in range(8)], messages),
            "has_discount": rng.random(messages) < 0.3,
            "headline_length": rng.integers(20, 90, messages, dtype=np.int32),
            "channels": [list(CHANNELS)] * messages,
        }
    )


def _timestamps(micros: np.ndarray) -> pl.Series:
    return pl.Series(micros.astype(np.int64)).cast(TIMESTAMP)
