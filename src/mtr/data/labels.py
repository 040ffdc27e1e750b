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
  at the same instant share a window. Matured iff the window's end <= log_end and the window is not
  censored: a window that no logged send cut is complete only if the log holds every decision until
  t0 + 7 days (`decisions_end`). A log whose decisions stop before its end (a quiet follow-up, an extract
  of sends older than its events) would otherwise lengthen the last windows to 7 days: those are
  censored (null, masked), never lengthened.
- conversion_value (every row, continuous): the summed value of the conversions in that window (0 when
  none), matured as conversion. The value column `conversion_value` holds it for every dataset.
- retention (every row): an activity row on any day in [d + 22, d + 28], d = the UTC date of t0.
  Matured iff day d + 28 is fully observed: (d + 29 days) 00:00 UTC <= log_end.
- active_days_8w (every row, continuous): the number of activity days in [d + 1, d + 56], d = the UTC date of
  the decision: the long-term outcome, the same window for every action. Matured iff day d + 56 is fully
  observed (horizon 57 days).

Each objective names its rule (`Objective.label_rule`, a key of `LABEL_RULES`); a rule says which
per-opportunity windows it reads (`PARTS`), when it has matured, its horizon, and its label and dtype.
Adding an objective is a table entry plus, when no rule fits, a rule here.

Horizon: a decision on day d (sends go out on the decision's day) has its label matured by 00:00 UTC of
day d + horizon: 3 days for engagement and unsubscribe (send + 48 h), 8 for conversion (send + 7 days),
29 for retention (day d + 28 fully observed). `mtr.data.build` splits the log by it.

Decision rewards: a per-send label measures what it serves, the prediction of a send's outcome, and
its window depends on the action (a send's conversion window opens at the send hour and closes at the
next send; a "send nothing" row's opens at 00:00 and carries the previous send's lift). Off-policy
evaluation and the Pareto study compare actions, so a table that decides reads the decision rules
("decision_conversion" and "decision_conversion_value", the objective `DECISION_CONVERSION` and the table
`DECISION_OBJECTIVES`): any conversion in [ts, ts + 7 days) from the decision time, the same window for
every action, "send nothing" included, not cut by later sends (they stay as logged). Matured iff ts + 7
days <= log_end. Engagement, unsubscribe (0 without a send) and retention (from the decision's day)
already measure the same thing for every action.

Masks: `mask_{objective}_{channel}` is 1 only on rows of that channel ("none" for the organic tasks
such as conversion_none and retention_none) whose label has matured. An immature label is null, never a
false 0. Labels that do not apply (engagement or unsubscribe of a "send nothing") are null too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from mtr.data.asof import KEY
from mtr.data.label_windows import (
    LONG_TERM_DAYS,
    PARTS,
    REACTION_WINDOW,
    RETENTION_DAYS,
    VALUE_COLUMN,
    LabelInputs,
)
from mtr.errors import InputError
from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.schema import TaskSpec, messaging_tasks


@dataclass(frozen=True)
class ObservedUntil:
    """How far a log observes: its events until `log_end`, its decisions until `decisions_end`.

    Attributes:
        log_end: end of the observation window (exclusive).
        decisions_end: the log holds every decision before this time (at most `log_end`); a later
            decision, which could have cut a window, is not in the log.
    """

    log_end: datetime
    decisions_end: datetime

    def bound(self, rule: LabelRule) -> datetime:
        """The time by which `rule`'s labels must have matured: decisions_end for a rule whose window a
        later decision can cut, log_end for the others."""
        return self.decisions_end if rule.cut_by_decisions else self.log_end


@dataclass(frozen=True)
class LabelRule:
    """How one objective's label is computed from the per-opportunity parts.

    Args:
        parts: names in `PARTS` whose columns the expressions read (joined once per build, however
            many rules share them).
        matured: how far the log observes -> whether the row's label is observed in full (a row that is
            not gets null).
        label: the observed outcome where matured.
        dtype: Int8 for a binary 0/1 label, Float64 for a continuous one.
        horizon_days: a decision on day d has matured by 00:00 UTC of day d + horizon_days.
        cut_by_decisions: a later decision can end the window (so it matures only where the log holds
            the decisions, see `ObservedUntil`).
    """

    parts: tuple[str, ...]
    matured: Callable[[ObservedUntil], pl.Expr]
    label: pl.Expr
    dtype: pl.DataType
    horizon_days: int
    cut_by_decisions: bool = False

    @property
    def kind(self) -> str:
        return "continuous" if self.dtype.is_float() else "binary"


def _reaction_matured(observed: ObservedUntil) -> pl.Expr:
    return pl.col("send_ts").is_not_null() & (pl.col("send_ts") + REACTION_WINDOW <= observed.log_end)


def _conversion_matured(observed: ObservedUntil) -> pl.Expr:
    # Cut by a logged send, or long enough observed that a send would be in the log: never censored-as-complete.
    complete = pl.col("conversion_cut") | (pl.col("conversion_nominal_end") <= observed.decisions_end)
    return (pl.col("conversion_end") <= observed.log_end) & complete


def _decision_matured(observed: ObservedUntil) -> pl.Expr:
    return pl.col("decision_end") <= observed.log_end


def _retention_matured(observed: ObservedUntil) -> pl.Expr:
    return _day_observed("retention_day", observed)


def _long_term_matured(observed: ObservedUntil) -> pl.Expr:
    return _day_observed("long_term_day", observed)


def _day_observed(column: str, observed: ObservedUntil) -> pl.Expr:
    """The date in `column` is fully observed: 00:00 UTC of the next day is at most log_end."""
    end = pl.col(column).dt.offset_by("1d").cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return end <= observed.log_end


_REACTION_DAYS = 3  # a send on day d, + 48 h, has reacted by day d + 3
_CONVERSION_DAYS = 8  # a send on day d, + 7 days
_RETENTION_HORIZON = RETENTION_DAYS[1] + 1  # day d + 28 fully observed
_LONG_TERM_HORIZON = LONG_TERM_DAYS + 1  # day d + 56 fully observed
LABEL_RULES: dict[str, LabelRule] = {
    "conversion": LabelRule(
        ("conversion_window",), _conversion_matured, pl.col("conversions") > 0, pl.Int8, _CONVERSION_DAYS, True
    ),
    "conversion_value": LabelRule(
        ("conversion_window",), _conversion_matured, pl.col(VALUE_COLUMN), pl.Float64, _CONVERSION_DAYS, True
    ),
    # The decision rewards: the same window for every action (see the module docstring).
    "decision_conversion": LabelRule(
        ("decision_window",), _decision_matured, pl.col("decision_conversions") > 0, pl.Int8, _CONVERSION_DAYS
    ),
    "decision_conversion_value": LabelRule(
        ("decision_window",), _decision_matured, pl.col("decision_value"), pl.Float64, _CONVERSION_DAYS
    ),
    "engagement": LabelRule(
        ("engaged",), _reaction_matured, pl.col("engaged").fill_null(False), pl.Int8, _REACTION_DAYS
    ),
    "retention": LabelRule(
        ("retention_window",), _retention_matured, pl.col("active_days") > 0, pl.Int8, _RETENTION_HORIZON
    ),
    # The long-term outcome: active days in the 8 weeks after the decision's day, for every action.
    "active_days_8w": LabelRule(
        ("long_term_window",),
        _long_term_matured,
        pl.col("active_days_8w").cast(pl.Float64),
        pl.Float64,
        _LONG_TERM_HORIZON,
    ),
    "unsubscribe": LabelRule(
        ("unsubscribed",), _reaction_matured, pl.col("unsubscribed").fill_null(False), pl.Int8, _REACTION_DAYS
    ),
}


def label_rule(objective: Objective) -> LabelRule:
    """The objective's rule; an unknown rule or one of another kind raises `InputError` naming it."""
    rule = LABEL_RULES.get(objective.label_rule)
    if rule is None:
        raise InputError(
            f"objective '{objective.name}': unknown label_rule {objective.label_rule!r} (rules: {sorted(LABEL_RULES)})"
        )
    if rule.kind != objective.kind:
        raise InputError(
            f"objective '{objective.name}' is {objective.kind} but its label_rule {objective.label_rule!r} "
            f"gives {rule.kind} labels"
        )
    return rule


def label_columns(tasks: Iterable[TaskSpec]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(task.label_column for task in tasks))


def mask_columns(tasks: Iterable[TaskSpec]) -> tuple[str, ...]:
    return tuple(task.mask_column for task in tasks if task.mask_column)


def label_opportunities(
    opportunities: pl.LazyFrame,
    engagements: pl.LazyFrame,
    conversions: pl.LazyFrame,
    unsubscribes: pl.LazyFrame,
    activity: pl.LazyFrame,
    observed: ObservedUntil,
    objectives: tuple[Objective, ...] = MESSAGING_OBJECTIVES,
) -> pl.LazyFrame:
    """Labels, masks and conversion value of every opportunity of one user partition.

    Args:
        opportunities: the `opportunities` table (all users of the partition, sends and no-sends).
        engagements, conversions, unsubscribes, activity: the same users' event tables.
        observed: how far the log observes events and decisions.
        objectives: the objective table; each objective's `label_rule` computes `label_{objective}`.

    Returns:
        `[opportunity_id, label_* (table order), mask_*_* (task order), conversion_value]`, one row per
        opportunity.
    """
    rows = opportunities.with_columns(t0=pl.coalesce("send_ts", "ts"))
    events = {"engagements": engagements, "conversions": conversions, "unsubscribes": unsubscribes}
    inputs = LabelInputs(rows, rows.filter(pl.col("send_ts").is_not_null()), {**events, "activity": activity})
    rules = {o.name: label_rule(o) for o in objectives}
    value_rule = LABEL_RULES[VALUE_COLUMN]
    labelled = rows
    needed = (*rules.values(), value_rule)
    for part in dict.fromkeys(p for rule in needed for p in rule.parts):
        labelled = labelled.join(PARTS[part](inputs), on=KEY, how="left")
    matured = {name: rule.matured(observed) for name, rule in rules.items()}
    tasks = messaging_tasks(objectives)
    label_column = {task.objective: task.label_column for task in tasks}  # the schema names the columns
    return labelled.select(
        KEY,
        *(pl.when(matured[n]).then(rule.label.cast(rule.dtype)).alias(label_column[n]) for n, rule in rules.items()),
        *(
            (matured[task.objective] & (pl.col("channel") == task.channel)).cast(pl.Int8).alias(task.mask_column)
            for task in tasks
        ),
        pl.when(value_rule.matured(observed)).then(value_rule.label).alias(VALUE_COLUMN),
    )
