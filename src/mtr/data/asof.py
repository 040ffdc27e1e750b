"""Counting a user's events before a moment with as-of joins on cumulative sums, no per-row Python.

Both labels (events inside a window) and point-in-time features (events in the last W days) are
differences of one quantity: "the sum over the user's events strictly before t". Events are summed per
distinct time, accumulated per user, and each row picks the last cumulative value before its t.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

KEY = "opportunity_id"
_AT = "_at"
# A total that counts distinct instants (e.g. active days), however many events share one.
ONE_PER_INSTANT = pl.lit(1, pl.Int64)


def cumulative_before(
    rows: pl.LazyFrame,
    at: pl.Expr,
    events: pl.LazyFrame,
    on: str,
    totals: Mapping[str, pl.Expr],
    *,
    inclusive: bool = False,
    last_time: str | None = None,
) -> pl.LazyFrame:
    """For each row, sums over the same user's events with `events[on] < at` (`<=` if `inclusive`).

    Args:
        rows: frame with `opportunity_id` and `user_id`.
        at: the moment per row (a Datetime or Date expression on `rows`).
        events: frame with `user_id` and the time column `on` (same dtype as `at`).
        totals: output name -> aggregation over one instant's events, e.g. `(pl.col("channel") == "push").sum()`.
        inclusive: count events exactly at `at` too.
        last_time: if given, also output the time of the latest counted event under this name (null if none).

    Returns:
        `[opportunity_id, *totals, last_time?]`, one row per input row, totals 0 when no event counts.
    """
    per_instant = events.group_by("user_id", on).agg(**totals).sort(on)
    cumulative = per_instant.with_columns(pl.col(name).cum_sum().over("user_id") for name in totals)
    if last_time is not None:
        cumulative = cumulative.with_columns(pl.col(on).alias(last_time))
    return (
        rows.select(KEY, "user_id", at.alias(_AT))
        .sort(_AT)
        .join_asof(
            cumulative.rename({on: _AT}),
            on=_AT,
            by="user_id",
            strategy="backward",
            allow_exact_matches=inclusive,
            # Both sides are sorted on the time just above; polars cannot verify it inside `by` groups.
            check_sortedness=False,
        )
        .select(KEY, *(pl.col(name).fill_null(0) for name in totals), *([last_time] if last_time else []))
    )


def first_after(rows: pl.LazyFrame, at: pl.Expr, times: pl.LazyFrame, on: str, name: str) -> pl.LazyFrame:
    """For each row, the same user's earliest time in `times[on]` strictly after `at` (null if none).

    Returns:
        `[opportunity_id, name]`, one row per input row.
    """
    distinct = times.select("user_id", pl.col(on).alias(_AT)).unique().with_columns(pl.col(_AT).alias(name)).sort(_AT)
    return (
        rows.select(KEY, "user_id", at.alias(_AT))
        .sort(_AT)
        .join_asof(
            distinct, on=_AT, by="user_id", strategy="forward", allow_exact_matches=False, check_sortedness=False
        )
        .select(KEY, name)
    )


def window_counts(
    rows: pl.LazyFrame,
    events: pl.LazyFrame,
    on: str,
    totals: Mapping[str, pl.Expr],
    start: pl.Expr,
    end: pl.Expr,
) -> pl.LazyFrame:
    """Sums over the same user's events with `start <= events[on] < end`, per row.

    Returns:
        `[opportunity_id, *totals]`, one row per input row.
    """
    before_end = cumulative_before(rows, end, events, on, totals)
    before_start = cumulative_before(rows, start, events, on, totals)
    return before_end.join(before_start, on=KEY, suffix="_start").select(
        KEY, *((pl.col(name) - pl.col(f"{name}_start")).alias(name) for name in totals)
    )
