"""Model features of an opportunity, kept raw in the tables (encoded later by `mtr.data.preprocess`).

History features are point-in-time: they use only events strictly before the decision time `ts`
(a send scheduled at or after `ts`, its engagements and anything later never leak into them).

- user: country, platform, plan, age_bucket (sparse); tenure_days = days from signup to ts (dense).
- action: message_id, message_type, topic, channel, hour, has_discount, day_of_week of ts (sparse).
  A "send nothing" has channel "none" and null message and hour, which encode to the unknown id.
- history over W in {7, 28} days (dense, log1p): sends_{channel}_{W}d (send_ts in [ts - W, ts)),
  engagements_{channel}_{W}d (engagement ts in [ts - W, ts)), conversions_28d, active_days_{W}d
  (activity dates in [D - W, D), D = the date of ts); days_since_engagement (capped, also when none);
  subscribed_{channel} (sparse: no unsubscribe of that channel before ts).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import polars as pl

from mtr.data.asof import KEY, ONE_PER_INSTANT, cumulative_table, lookup_before, window_counts
from mtr.schema import CHANNELS

WINDOWS_DAYS = (7, 28)

USER_SPARSE = ("country", "platform", "plan", "age_bucket")
MESSAGE_SPARSE = ("message_type", "topic", "has_discount")
# message_id, channel and hour are columns of the opportunity itself.
ACTION_SPARSE = ("message_id", *MESSAGE_SPARSE, "channel", "hour", "day_of_week")
SUBSCRIBED = tuple(f"subscribed_{c}" for c in CHANNELS)
SPARSE_FEATURES = USER_SPARSE + ACTION_SPARSE + SUBSCRIBED

# name -> description of the point-in-time counts.
HISTORY_DESCRIPTIONS = {
    **{f"sends_{c}_{w}d": f"{c} sends in the {w} days before ts" for c in CHANNELS for w in WINDOWS_DAYS},
    **{f"engagements_{c}_{w}d": f"{c} engagements in the {w} days before ts" for c in CHANNELS for w in WINDOWS_DAYS},
    "conversions_28d": "conversions in the 28 days before ts",
    **{f"active_days_{w}d": f"active days among the {w} days before the day of ts" for w in WINDOWS_DAYS},
}
HISTORY_COUNTS = tuple(HISTORY_DESCRIPTIONS)
DENSE_FEATURES: dict[str, Literal["identity", "log1p"]] = {
    "tenure_days": "log1p",
    **{name: "log1p" for name in HISTORY_COUNTS},
    "days_since_engagement": "identity",
}

DESCRIPTIONS = {
    "tenure_days": "days from signup to the decision time",
    "day_of_week": "ISO weekday of the decision time (1 = Monday)",
    "days_since_engagement": "days since the user's last engagement before ts, capped",
    **HISTORY_DESCRIPTIONS,
    **{name: f"no unsubscribe from {name.removeprefix('subscribed_')} before ts" for name in SUBSCRIBED},
}


def opportunity_features(
    opportunities: pl.LazyFrame,
    users: pl.LazyFrame,
    messages: pl.LazyFrame,
    engagements: pl.LazyFrame,
    conversions: pl.LazyFrame,
    unsubscribes: pl.LazyFrame,
    activity: pl.LazyFrame,
    days_since_cap: float,
) -> pl.LazyFrame:
    """Raw feature columns of every opportunity of one user partition.

    Args:
        opportunities: the `opportunities` table of the partition.
        users, messages, engagements, conversions, unsubscribes, activity: the partition's other tables.
        days_since_cap: `days_since_engagement` when the user has no engagement before ts, and its maximum.

    Returns:
        `[opportunity_id, *SPARSE_FEATURES but message_id, channel and hour, *DENSE_FEATURES]`, one row per
        opportunity.
    """
    ts = pl.col("ts")
    frame = opportunities.join(users, on="user_id", how="left").join(messages, on="message_id", how="left")
    for part in _history(opportunities, engagements, conversions, unsubscribes, activity):
        frame = frame.join(part, on=KEY, how="left")
    days_since = (ts - pl.col("last_engagement_ts")).dt.total_seconds() / 86_400.0
    return frame.select(
        KEY,
        *USER_SPARSE,
        *MESSAGE_SPARSE,
        ts.dt.weekday().alias("day_of_week"),
        *(pl.col(f"unsubscribed_{c}").eq(0).alias(f"subscribed_{c}") for c in CHANNELS),
        ((ts - pl.col("signup_ts")).dt.total_seconds() / 86_400.0).clip(lower_bound=0.0).alias("tenure_days"),
        *HISTORY_COUNTS,
        days_since.fill_null(days_since_cap).clip(upper_bound=days_since_cap).alias("days_since_engagement"),
    )


def _history(
    opportunities: pl.LazyFrame,
    engagements: pl.LazyFrame,
    conversions: pl.LazyFrame,
    unsubscribes: pl.LazyFrame,
    activity: pl.LazyFrame,
) -> list[pl.LazyFrame]:
    """The point-in-time counts, each `[opportunity_id, ...]` with one row per opportunity: sends and
    engagements per channel (+ `last_engagement_ts`), conversions, active days and unsubscribes per channel."""
    ts = pl.col("ts")
    day = ts.dt.date()
    sends = opportunities.filter(pl.col("send_ts").is_not_null())
    by_channel = {c: (pl.col("channel") == c).sum().cast(pl.Int64) for c in CHANNELS}
    lookbacks = {f"{w}d": ts - timedelta(days=w) for w in WINDOWS_DAYS}
    unsubscribed = {f"unsubscribed_{c}": by_channel[c] for c in CHANNELS}
    return [
        window_counts(opportunities, sends, "send_ts", _prefixed("sends", by_channel), ts, lookbacks),
        window_counts(
            opportunities,
            engagements,
            "ts",
            _prefixed("engagements", by_channel),
            ts,
            lookbacks,
            last_time="last_engagement_ts",
        ),
        window_counts(
            opportunities, conversions, "ts", {"conversions": pl.len().cast(pl.Int64)}, ts, {"28d": lookbacks["28d"]}
        ),
        window_counts(
            opportunities,
            activity,
            "date",
            {"active_days": ONE_PER_INSTANT},
            day,
            {f"{w}d": day - timedelta(days=w) for w in WINDOWS_DAYS},
        ),
        lookup_before(opportunities, ts, cumulative_table(unsubscribes, "ts", unsubscribed), list(unsubscribed)),
    ]


def _prefixed(prefix: str, totals: dict[str, pl.Expr]) -> dict[str, pl.Expr]:
    return {f"{prefix}_{name}": expr for name, expr in totals.items()}
