"""Model features of an opportunity, kept raw in the tables (encoded later by `mtr.data.preprocess`).

Which features a dataset has is declared by a `FeatureConfig` (`mtr.data.feature_config`); this module
computes them. History features are point-in-time: they use only events strictly before the decision time
`ts` (a send scheduled at or after `ts`, its engagements and anything later never leak into them).

- attributes: the declared columns of users, messages (of the opportunity's own message) and opportunities;
- action: message_id, channel, hour, day_of_week of ts (sparse); a "send nothing" has channel "none" and null
  message and hour, which encode to the unknown id;
- standing: tenure_days = days from signup to ts; history_days = days from max(log_start, signup) to ts, the
  part of the user's past the log can see (a log that starts mid-stream sees less of it);
  subscribed_{channel} (sparse: no unsubscribe of that channel before ts);
- history over the declared windows W (dense, log1p): sends_{channel}_{W}d (send_ts in [ts - W, ts)),
  engagements_{channel}_{W}d, conversions_{W}d (event ts in [ts - W, ts)), active_days_{W}d (activity dates
  in [D - W, D), D = the date of ts); days_since_{event} (capped, also when none).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from mtr.data.asof import KEY, ONE_PER_INSTANT, cumulative_table, lookup_before, window_counts
from mtr.data.feature_config import COUNT_STEM, RECENCY_NAME, FeatureConfig, HistoryCount
from mtr.events import TIMESTAMP
from mtr.schema import CHANNELS

# The event tables a decision's history features count (sends come from the opportunities themselves).
HISTORY_TABLES = ("engagements", "conversions", "unsubscribes", "activity")


def opportunity_features(
    opportunities: pl.LazyFrame,
    users: pl.LazyFrame,
    messages: pl.LazyFrame,
    engagements: pl.LazyFrame,
    conversions: pl.LazyFrame,
    unsubscribes: pl.LazyFrame,
    activity: pl.LazyFrame,
    config: FeatureConfig,
    log_start: datetime,
    days_since_cap: float,
    logged: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """Raw feature columns of every opportunity of one user partition.

    Args:
        opportunities: the `opportunities` table of the partition (with the declared context columns).
        logged: the logged decisions whose sends the send counts read (default: `opportunities` themselves;
            serving passes the log's, to feature new decisions alone).
        users, messages, engagements, conversions, unsubscribes, activity: the partition's other tables.
        config: the declared features.
        log_start: the start of the log's observation window (what `history_days` counts from).
        days_since_cap: a `days_since_*` feature's value when the user has no such event before ts, and its maximum.

    Returns:
        `[opportunity_id, *declared and built-in features except message_id, channel and hour]`, one row per
        opportunity.
    """
    ts = pl.col("ts")
    user_columns = users.select("user_id", "signup_ts", *config.users.columns)
    message_columns = messages.select("message_id", *config.messages.columns)
    frame = opportunities.join(user_columns, on="user_id", how="left").join(
        message_columns, on="message_id", how="left"
    )
    sends = (opportunities if logged is None else logged).filter(pl.col("send_ts").is_not_null())
    for part in _history(opportunities, sends, engagements, conversions, unsubscribes, activity, config):
        frame = frame.join(part, on=KEY, how="left")
    seen_from = pl.max_horizontal(pl.col("signup_ts"), pl.lit(log_start, dtype=TIMESTAMP))
    recencies = []
    for count in config.counts:
        if count.recency:
            name = RECENCY_NAME[count.table]
            days = _days_between(pl.col(f"last_{count.table}"), ts if count.table != "activity" else ts.dt.date())
            recencies.append(days.fill_null(days_since_cap).clip(upper_bound=days_since_cap).alias(name))
    return frame.select(
        KEY,
        *config.users.categorical,
        *config.messages.categorical,
        ts.dt.weekday().alias("day_of_week"),
        *config.opportunities.categorical,
        *(pl.col(f"unsubscribed_{c}").eq(0).alias(f"subscribed_{c}") for c in CHANNELS),
        *config.users.dense,
        *config.messages.dense,
        *config.opportunities.dense,
        _days_between(pl.col("signup_ts"), ts).clip(lower_bound=0.0).alias("tenure_days"),
        _days_between(seen_from, ts).clip(lower_bound=0.0).alias("history_days"),
        *config.history_counts,
        *recencies,
    )


def engagements_of_logged_sends(engagements: pl.LazyFrame, opportunities: pl.LazyFrame) -> pl.LazyFrame:
    """The engagements whose send is in the log: those of sends made before the log starts (a mid-stream
    extract) count in no feature or label, in a build or at serving alike."""
    return engagements.join(opportunities.select(KEY), on=KEY, how="semi")


def _days_between(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """Days from `start` to `end` (datetimes or dates), fractional."""
    return (end - start).dt.total_seconds() / 86_400.0


def _history(
    opportunities: pl.LazyFrame,
    sends: pl.LazyFrame,
    engagements: pl.LazyFrame,
    conversions: pl.LazyFrame,
    unsubscribes: pl.LazyFrame,
    activity: pl.LazyFrame,
    config: FeatureConfig,
) -> list[pl.LazyFrame]:
    """The declared point-in-time counts and the unsubscribes per channel, each `[opportunity_id, ...]` with one
    row per opportunity (a count with recency also gives `last_{table}`, its latest event before ts)."""
    events = {
        "sends": (sends, "send_ts"),
        "engagements": (engagements, "ts"),
        "conversions": (conversions, "ts"),
        "activity": (activity, "date"),
    }
    parts = [_count(opportunities, *events[count.table], count, config) for count in config.counts]
    parts.append(unsubscribed_before(opportunities, unsubscribes))
    return parts


def unsubscribed_before(rows: pl.LazyFrame, unsubscribes: pl.LazyFrame) -> pl.LazyFrame:
    """`[opportunity_id, unsubscribed_{channel}...]`: the user's unsubscribes from each channel strictly before ts."""
    totals = {f"unsubscribed_{c}": (pl.col("channel") == c).sum().cast(pl.Int64) for c in CHANNELS}
    return lookup_before(rows, pl.col("ts"), cumulative_table(unsubscribes, "ts", totals), list(totals))


def _count(
    opportunities: pl.LazyFrame, events: pl.LazyFrame, on: str, count: HistoryCount, config: FeatureConfig
) -> pl.LazyFrame:
    """One declared history count over its windows (activity counts distinct days before the decision's day)."""
    at = pl.col("ts").dt.date() if count.table == "activity" else pl.col("ts")
    stem = COUNT_STEM[count.table]
    if count.per_channel:
        totals = {f"{stem}_{c}": (pl.col("channel") == c).sum().cast(pl.Int64) for c in CHANNELS}
    else:
        totals = {stem: ONE_PER_INSTANT if count.table == "activity" else pl.len().cast(pl.Int64)}
    starts = {f"{w}d": at - timedelta(days=w) for w in config.windows_of(count)}
    last = f"last_{count.table}" if count.recency else None
    return window_counts(opportunities, events, on, totals, at, starts, last_time=last)
