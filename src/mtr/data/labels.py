"""Label rules: what counts as a conversion, engagement, retention or unsubscribe of one opportunity.

The simulator's ground truth uses exactly these rules. `t0` is the send time `send_ts` of a send and
the decision time `ts` of a "send nothing" row; `log_end` closes the observation window.

- engagement (send rows): an engagement event carrying this opportunity_id with ts in
  [send_ts, send_ts + 48 h). Matured iff send_ts + 48 h <= log_end.
- unsubscribe (send rows): an unsubscribe on the send's channel with ts in [send_ts, send_ts + 48 h),
  attributed to the user's latest send on that channel at or before it. Matured iff
  send_ts + 48 h <= log_end.
- conversion (every row): at least one conversion with ts in [t0, min(t0 + 7 days, next send)), where
  "next send" is the user's earliest send_ts strictly after t0 on any channel. For sends this is
  last-touch attribution within 7 days; a "send nothing" row's window ends at the next send. Two sends
  at the same instant share a window. Matured iff the window's end <= log_end. `conversion_value` sums
  the values in the window (null while immature).
- retention (every row): an activity row on any day in [d + 22, d + 28], d = the UTC date of t0.
  Matured iff day d + 28 is fully observed: (d + 29 days) 00:00 UTC <= log_end.

Masks: `mask_{objective}_{channel}` is 1 only on rows of that channel ("none" for the organic tasks
conversion_none and retention_none) whose label has matured. An immature label is null, never a
false 0. Labels that do not apply (engagement or unsubscribe of a "send nothing") are null too.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from mtr.data.asof import KEY, ONE_PER_INSTANT, first_after, window_counts
from mtr.schema import messaging_tasks

REACTION_WINDOW = timedelta(hours=48)
CONVERSION_WINDOW = timedelta(days=7)
RETENTION_DAYS = (22, 28)

LABEL_COLUMNS = tuple(dict.fromkeys(task.label_column for task in messaging_tasks()))
MASK_COLUMNS = tuple(task.mask_column for task in messaging_tasks() if task.mask_column)


def label_opportunities(
    opportunities: pl.LazyFrame,
    engagements: pl.LazyFrame,
    conversions: pl.LazyFrame,
    unsubscribes: pl.LazyFrame,
    activity: pl.LazyFrame,
    log_end: datetime,
) -> pl.LazyFrame:
    """Labels, masks and conversion value of every opportunity of one user partition.

    Args:
        opportunities: the `opportunities` table (all users of the partition, sends and no-sends).
        engagements, conversions, unsubscribes, activity: the same users' event tables.
        log_end: end of the observation window.

    Returns:
        `[opportunity_id, label_*, mask_*_*, conversion_value]`, one row per opportunity.
    """
    rows = opportunities.with_columns(t0=pl.coalesce("send_ts", "ts"))
    sends = rows.filter(pl.col("send_ts").is_not_null())
    conversion = _conversion(rows, sends, conversions)
    retention = _retention(rows, activity)
    engaged = (
        engagements.join(sends.select(KEY, "send_ts"), on=KEY)
        .filter(pl.col("ts") < pl.col("send_ts") + REACTION_WINDOW)
        .select(pl.col(KEY).unique(), engaged=pl.lit(True))
    )
    unsubscribed = _attributed_unsubscribes(sends, unsubscribes)
    is_send = pl.col("send_ts").is_not_null()
    reaction_matured = is_send & (pl.col("send_ts") + REACTION_WINDOW <= log_end)
    matured = {
        "engagement": reaction_matured,
        "unsubscribe": reaction_matured,
        "conversion": pl.col("conversion_end") <= log_end,
        "retention": _midnight_utc(pl.col("retention_day").dt.offset_by("1d")) <= log_end,
    }
    observed = {
        "engagement": pl.col("engaged").fill_null(False),
        "unsubscribe": pl.col("unsubscribed").fill_null(False),
        "conversion": pl.col("conversions") > 0,
        "retention": pl.col("active_days") > 0,
    }
    labelled = rows
    for part in (conversion, retention, engaged, unsubscribed):
        labelled = labelled.join(part, on=KEY, how="left")
    return labelled.select(
        KEY,
        *(pl.when(matured[o]).then(observed[o].cast(pl.Int8)).alias(f"label_{o}") for o in matured),
        *(
            (matured[task.objective] & (pl.col("channel") == task.channel)).cast(pl.Int8).alias(task.mask_column)
            for task in messaging_tasks()
        ),
        pl.when(matured["conversion"]).then(pl.col("conversion_value")).alias("conversion_value"),
    )


def _conversion(rows: pl.LazyFrame, sends: pl.LazyFrame, conversions: pl.LazyFrame) -> pl.LazyFrame:
    """`[opportunity_id, conversion_end, conversions, conversion_value]` over [t0, min(t0 + 7 d, next send))."""
    next_send = first_after(rows, pl.col("t0"), sends, "send_ts", "next_send_ts")
    windows = rows.join(next_send, on=KEY).with_columns(
        conversion_end=pl.min_horizontal(pl.col("t0") + CONVERSION_WINDOW, "next_send_ts")
    )
    totals = {"conversions": pl.len().cast(pl.Int64), "conversion_value": pl.col("value").sum()}
    counted = window_counts(windows, conversions, "ts", totals, pl.col("conversion_end"), {"": pl.col("t0")})
    return windows.select(KEY, "conversion_end").join(counted, on=KEY)


def _retention(rows: pl.LazyFrame, activity: pl.LazyFrame) -> pl.LazyFrame:
    """`[opportunity_id, retention_day, active_days]`: active days in [d + 22, d + 28], d = date of t0."""
    first, last = RETENTION_DAYS
    day = pl.col("t0").dt.date()
    days = rows.with_columns(retention_day=day.dt.offset_by(f"{last}d"))
    totals = {"active_days": ONE_PER_INSTANT}
    counted = window_counts(
        days, activity, "date", totals, day.dt.offset_by(f"{last + 1}d"), {"": day.dt.offset_by(f"{first}d")}
    )
    return days.select(KEY, "retention_day").join(counted, on=KEY)


def _attributed_unsubscribes(sends: pl.LazyFrame, unsubscribes: pl.LazyFrame) -> pl.LazyFrame:
    """Opportunity ids of the sends that an unsubscribe is attributed to (latest send on its channel, within 48 h)."""
    latest_send = (
        unsubscribes.select("user_id", "channel", "ts")
        .sort("ts")
        .join_asof(
            sends.select(KEY, "user_id", "channel", "send_ts").sort("send_ts"),
            left_on="ts",
            right_on="send_ts",
            by=["user_id", "channel"],
            strategy="backward",
            check_sortedness=False,
        )
    )
    return latest_send.filter(pl.col("ts") < pl.col("send_ts") + REACTION_WINDOW).select(
        pl.col(KEY).unique(), unsubscribed=pl.lit(True)
    )


def _midnight_utc(day: pl.Expr) -> pl.Expr:
    """00:00 UTC of a Date."""
    return day.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
