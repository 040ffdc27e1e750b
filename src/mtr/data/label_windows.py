"""The per-opportunity windows the label rules read (`mtr.data.labels`): conversions from a send until the next
one, conversions from the decision time, activity 22-28 days later, a send's engagement and unsubscribe.

Each part maps one user partition's opportunities and events to `[opportunity_id, ...]` columns; a label
rule names the parts it reads, and each part is joined once per build however many rules share it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import polars as pl

from mtr.data.asof import KEY, ONE_PER_INSTANT, first_after, window_counts

REACTION_WINDOW = timedelta(hours=48)
CONVERSION_WINDOW = timedelta(days=7)
RETENTION_DAYS = (22, 28)
LONG_TERM_DAYS = 56  # active days in [d + 1, d + 56]: the 8 weeks after the decision's day
VALUE_COLUMN = "conversion_value"  # kept on every row for analysis (the offer value a conversion brought)


@dataclass(frozen=True)
class LabelInputs:
    """One user partition's opportunities and events, as the parts read them.

    Attributes:
        rows: every opportunity with `t0` (send_ts of a send, ts of a no-send).
        sends: the rows that are sends.
        events: table name -> the partition's engagements, conversions, unsubscribes and activity.
    """

    rows: pl.LazyFrame
    sends: pl.LazyFrame
    events: dict[str, pl.LazyFrame]


def _conversion(inputs: LabelInputs) -> pl.LazyFrame:
    """`[opportunity_id, conversion_end, conversions, conversion_value]` over [t0, min(t0 + 7 d, next send))."""
    rows = inputs.rows
    next_send = first_after(rows, pl.col("t0"), inputs.sends, "send_ts", "next_send_ts")
    windows = rows.join(next_send, on=KEY).with_columns(
        conversion_end=pl.min_horizontal(pl.col("t0") + CONVERSION_WINDOW, "next_send_ts")
    )
    totals = {"conversions": pl.len().cast(pl.Int64), VALUE_COLUMN: pl.col("value").sum()}
    conversions = inputs.events["conversions"]
    counted = window_counts(windows, conversions, "ts", totals, pl.col("conversion_end"), {"": pl.col("t0")})
    cut = pl.col("next_send_ts").is_not_null() & (pl.col("next_send_ts") <= pl.col("t0") + CONVERSION_WINDOW)
    return windows.select(
        KEY, "conversion_end", conversion_cut=cut, conversion_nominal_end=pl.col("t0") + CONVERSION_WINDOW
    ).join(counted, on=KEY)


def _decision_conversion(inputs: LabelInputs) -> pl.LazyFrame:
    """`[opportunity_id, decision_end, decision_conversions, decision_value]` over [ts, ts + 7 d)."""
    windows = inputs.rows.with_columns(decision_end=pl.col("ts") + CONVERSION_WINDOW)
    totals = {"decision_conversions": pl.len().cast(pl.Int64), "decision_value": pl.col("value").sum()}
    counted = window_counts(
        windows, inputs.events["conversions"], "ts", totals, pl.col("decision_end"), {"": pl.col("ts")}
    )
    return windows.select(KEY, "decision_end").join(counted, on=KEY)


def _retention(inputs: LabelInputs) -> pl.LazyFrame:
    """`[opportunity_id, retention_day, active_days]`: active days in [d + 22, d + 28], d = date of t0."""
    first, last = RETENTION_DAYS
    day = pl.col("t0").dt.date()
    days = inputs.rows.with_columns(retention_day=day.dt.offset_by(f"{last}d"))
    totals = {"active_days": ONE_PER_INSTANT}
    counted = window_counts(
        days,
        inputs.events["activity"],
        "date",
        totals,
        day.dt.offset_by(f"{last + 1}d"),
        {"": day.dt.offset_by(f"{first}d")},
    )
    return days.select(KEY, "retention_day").join(counted, on=KEY)


def _long_term_activity(inputs: LabelInputs) -> pl.LazyFrame:
    """`[opportunity_id, long_term_day, active_days_8w]`: active days in [d + 1, d + 56], d = date of the decision
    (the same window for every action)."""
    day = pl.col("ts").dt.date()
    days = inputs.rows.with_columns(long_term_day=day.dt.offset_by(f"{LONG_TERM_DAYS}d"))
    counted = window_counts(
        days,
        inputs.events["activity"],
        "date",
        {"active_days_8w": ONE_PER_INSTANT},
        day.dt.offset_by(f"{LONG_TERM_DAYS + 1}d"),
        {"": day.dt.offset_by("1d")},
    )
    return days.select(KEY, "long_term_day").join(counted, on=KEY)


def _engaged(inputs: LabelInputs) -> pl.LazyFrame:
    """`[opportunity_id, engaged]` of the sends with an engagement within 48 h."""
    return (
        inputs.events["engagements"]
        .join(inputs.sends.select(KEY, "send_ts"), on=KEY)
        .filter(pl.col("ts") < pl.col("send_ts") + REACTION_WINDOW)
        .select(pl.col(KEY).unique(), engaged=pl.lit(True))
    )


def _unsubscribed(inputs: LabelInputs) -> pl.LazyFrame:
    """`[opportunity_id, unsubscribed]` of the sends an unsubscribe is attributed to (latest send on its
    channel, within 48 h)."""
    latest_send = (
        inputs.events["unsubscribes"]
        .select("user_id", "channel", "ts")
        .sort("ts")
        .join_asof(
            inputs.sends.select(KEY, "user_id", "channel", "send_ts").sort("send_ts"),
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


# Per-opportunity windows joined onto the rows (left join on opportunity_id), computed only when a rule reads them.
PARTS: dict[str, Callable[[LabelInputs], pl.LazyFrame]] = {
    "conversion_window": _conversion,
    "decision_window": _decision_conversion,
    "retention_window": _retention,
    "long_term_window": _long_term_activity,
    "engaged": _engaged,
    "unsubscribed": _unsubscribed,
}
