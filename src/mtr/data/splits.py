"""Time splits of an event log whose labels mean the same thing on every row.

The log is cut by decision day into train, then validation, then test. With `matured` splits (the
default), a split holds only days whose every label has matured by the log's end: a decision on day d
is in a split only if d + horizon <= the end of what the log observes, where the horizon is the longest
of the schema's label rules (29 days with retention, 8 with conversion; `mtr.data.labels`). Later days
are left out, as a platform's most recent decisions are: their outcomes are not known yet.

Between two splits lie `embargo_days` without decisions in any split (default: that same horizon), so
that every label of an earlier split had matured before the next split's first decision: a model chosen
on validation, or a policy chosen on it, used nothing that happened during the test days. The days of
the gaps are left out too.

    usable days = days with d + horizon <= end
    [ train | gap | validation | gap | test ] over the usable days, gap = embargo_days - 1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from mtr.data.labels import LabelRule, ObservedUntil, label_rule
from mtr.errors import InputError
from mtr.objectives import Objective
from mtr.schema import SPLITS


@dataclass(frozen=True)
class SplitPlan:
    """Which decision days form each split, and why the others are left out.

    Attributes:
        days: split -> (first, last) decision day.
        horizon_days: the longest label horizon of the schema's objectives.
        longest_label: the objective with that horizon.
        embargo_days: a later split starts at least this many days after an earlier one's last day.
        left_out_days: reason -> number of decision days in no split ("embargo", "immature").
    """

    days: dict[str, tuple[date, date]]
    horizon_days: int
    longest_label: str
    embargo_days: int
    left_out_days: dict[str, int]

    def expr(self) -> pl.Expr:
        """The split name of each row from the date of its decision time `ts`; null outside every split."""
        day = pl.col("ts").dt.date()
        split = pl.lit(None, dtype=pl.String)
        for name in reversed(SPLITS):
            first, last = self.days[name]
            split = pl.when(day.is_between(first, last)).then(pl.lit(name)).otherwise(split)
        return split

    def to_dict(self) -> dict[str, object]:
        """The plan as schema metadata records it."""
        return {
            "horizon_days": self.horizon_days,
            "longest_label": self.longest_label,
            "embargo_days": self.embargo_days,
            "left_out_days": dict(self.left_out_days),
        }


def decisions_end(opportunities: pl.LazyFrame, log_end: datetime) -> datetime:
    """The end of the last decision day (at most `log_end`): the log holds every decision before it."""
    last = opportunities.select(pl.col("ts").max()).collect().item()
    if last is None:
        raise InputError("table 'opportunities' is empty: there are no decisions to split")
    return min(log_end, _midnight(last.date() + timedelta(days=1)))


def plan_splits(
    opportunities: pl.LazyFrame,
    observed: ObservedUntil,
    objectives: Iterable[Objective],
    train_fraction: float,
    validation_fraction: float,
    embargo_days: int | None,
    matured: bool,
) -> SplitPlan:
    """Cut the decision days into train, validation and test (see the module docstring).

    Args:
        opportunities: the `opportunities` table (its `ts` dates are the decision days).
        observed: how far the log observes events and decisions.
        objectives: the schema's objectives; their label rules give the horizons.
        train_fraction, validation_fraction: shares of the days left for the splits.
        embargo_days: days from an earlier split's last day to the next one's first; None: the horizon.
        matured: keep only days whose every label has matured (False: every day, immature labels null).

    Raises:
        InputError: too few days for three splits, naming the horizon and its objective.
    """
    rules = {o.name: label_rule(o) for o in objectives}
    longest = max(rules, key=lambda name: rules[name].horizon_days)
    horizon = rules[longest].horizon_days
    embargo = horizon if embargo_days is None else embargo_days
    days = opportunities.select(pl.col("ts").dt.date().unique().sort()).collect().to_series().to_list()
    usable = [d for d in days if not matured or all(_matures(d, rule, observed) for rule in rules.values())]
    gap = max(embargo - 1, 0)
    budget = len(usable) - 2 * gap
    n_train = max(1, round(train_fraction * budget))
    n_validation = max(1, round(validation_fraction * budget))
    if budget < 3 or n_train + n_validation >= budget:
        needed = _days_needed(train_fraction, validation_fraction) + 2 * gap + (len(days) - len(usable))
        raise InputError(
            f"table 'opportunities' column 'ts' spans {len(days)} day(s), {len(usable)} of them with matured "
            f"labels; one day each for train, validation and test, two embargo gaps of {gap} day(s) and the "
            f"longest label horizon ({horizon} days, objective '{longest}') need at least {needed}: use a "
            "longer log, a smaller build.embargo_days, or drop the objective"
        )
    starts = (0, n_train + gap, n_train + n_validation + 2 * gap)
    ends = (n_train, n_train + n_validation + gap, budget + 2 * gap)
    split_days = {name: (usable[starts[i]], usable[ends[i] - 1]) for i, name in enumerate(SPLITS)}
    left_out = {"embargo": 2 * gap, "immature": len(days) - len(usable)}
    return SplitPlan(split_days, horizon, longest, embargo, left_out)


def _days_needed(train_fraction: float, validation_fraction: float) -> int:
    """The fewest split days that leave test at least one day after the fractions' rounding."""
    budget = 3
    while max(1, round(train_fraction * budget)) + max(1, round(validation_fraction * budget)) >= budget:
        budget += 1
    return budget


def _matures(day: date, rule: LabelRule, observed: ObservedUntil) -> bool:
    """Whether every label of `rule` for a decision on `day` has matured by what the log observes."""
    return _midnight(day + timedelta(days=rule.horizon_days)) <= observed.bound(rule)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)
