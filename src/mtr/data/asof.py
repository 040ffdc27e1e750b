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


def cumulative_table(events: pl.LazyFrame, on: str, totals: Mapping[str, pl.Expr]) -> pl.LazyFrame:
    """Per user and distinct time `on`: the running sums of `totals` up to and including that time.

    Args:
        events: frame with `user_id` and the time column `on`.
        totals: output name -> aggregation over one instant's events, e.g. `(pl.col("channel") == "push").sum()`.

    Returns:
        `[user_id, _at, *totals]` sorted by `_at`.
    """
    per_instant = events.group_by("user_id", on).agg(**totals).sort(on)
    cumulative = per_instant.with_columns(pl.col(name).cum_sum().over("user_id") for name in totals)
    return cumulative.rename({on: _AT})


def lookup_before(
    rows: pl.LazyFrame,
    at: pl.Expr,
    cumulative: pl.LazyFrame,
    totals: list[str],
    *,
    inclusive: bool = False,
    last_time: str | None = None,
) -> pl.LazyFrame:
    """For each row, the running sums of `cumulative_table` over the user's events before `at`.

    Args:
        rows: frame with `opportunity_id` and `user_id`.
        at: the moment per row (same dtype as the table's time).
        cumulative: a `cumulative_table`.
        totals: its columns to return.
        inclusive: count events exactly at `at` too (otherwise strictly before).
        last_time: if given, also return the time of the latest counted event under this name (null if none).

    Returns:
        `[opportunity_id, *totals, last_time?]`, one row per input row, totals 0 when no event counts.
    """
    if last_time is not None:
        cumulative = cumulative.with_columns(pl.col(_AT).alias(last_time))
    return (
        rows.select(KEY, "user_id", at.alias(_AT))
        .sort(_AT)
        .join_asof(
            cumulative,
            on=_AT,
            by="user_id",
            strategy="backward",
            allow_exact_matches=inclusive,
            # Both sides are sorted on the time; polars cannot verify it inside `by` groups.
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
    end: pl.Expr,
    starts: Mapping[str, pl.Expr],
    last_time: str | None = None,
) -> pl.LazyFrame:
    """Sums over the same user's events with `start <= events[on] < end`, for one or more starts per row.

    Args:
        rows, events, on, totals: as for `cumulative_table` and `lookup_before`.
        end: the windows' common exclusive end per row.
        starts: suffix -> inclusive start per row; each total is returned as `{total}_{suffix}` (`{total}`
            for an empty suffix).
        last_time: if given, also return the time of the latest event before `end` under this name.

    Returns:
        `[opportunity_id, *(total x start), last_time?]`, one row per input row.
    """
    cumulative = cumulative_table(events, on, totals)
    names = list(totals)
    windows = lookup_before(rows, end, cumulative, names, last_time=last_time).rename({n: f"{n}_end" for n in names})
    for suffix, start in starts.items():
        before_start = lookup_before(rows, start, cumulative, names).rename({n: f"{n}_start" for n in names})
        windows = (
            windows.join(before_start, on=KEY)
            .with_columns(
                (pl.col(f"{n}_end") - pl.col(f"{n}_start")).alias(f"{n}_{suffix}" if suffix else n) for n in names
            )
            .drop(f"{n}_start" for n in names)
        )
    return windows.drop(f"{n}_end" for n in names)
