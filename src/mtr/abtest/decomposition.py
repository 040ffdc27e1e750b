"""Where a lift comes from: a per-unit metric written as a product of chained factors.

With conversions per user = sends per user x engagements per send x conversions per engagement, the
treatment / control ratio of the product is the product of the factors' ratios, so the log-lift is the
sum of the factors' log-lifts; each factor's share of the overall lift is its log-lift over the total.
Shares add up to 1; a negative share is a factor that moved against the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtr.abtest.spec import MetricSpec


@dataclass(frozen=True)
class FactorLift:
    """One factor of a decomposition in one arm.

    Attributes:
        metric: the factor's metric name.
        control: the factor in control (a mean or ratio of sums, without CUPED).
        treatment: the factor in the treatment arm.
        rel_lift: treatment / control - 1.
        share: log(treatment / control) / log(total ratio); NaN when the total did not move.
    """

    metric: str
    control: float
    treatment: float
    rel_lift: float
    share: float


@dataclass(frozen=True)
class Decomposition:
    """A decomposition of one arm's lift against control.

    Attributes:
        name: the product metric's name.
        arm: the treatment arm.
        control: the product in control (the last numerator per unit, or per the first denominator).
        treatment: the product in the treatment arm.
        rel_lift: treatment / control - 1 of the product.
        factors: each factor's lift and share, in chain order.
    """

    name: str
    arm: str
    control: float
    treatment: float
    rel_lift: float
    factors: list[FactorLift]


def factor_value(metric: MetricSpec, columns: dict[str, np.ndarray]) -> float:
    """A factor's plain estimate in one arm: the mean of `column`, or sum(numerator) / sum(denominator)."""
    if metric.column is not None:
        return float(columns[metric.column].mean())
    return float(columns[metric.value_column].sum() / columns[metric.denominator].sum())


def decompose(
    name: str,
    arm: str,
    factors: list[MetricSpec],
    control: dict[str, np.ndarray],
    treatment: dict[str, np.ndarray],
) -> Decomposition:
    """Split the treatment's lift on the product of `factors` into each factor's share.

    Args:
        name: the product's name.
        arm: the treatment arm's name.
        factors: chained factor metrics (checked by `spec.check_chain`).
        control: control column -> per-unit values [n_control].
        treatment: treatment column -> per-unit values [n_treatment].
    """
    control_values = np.array([factor_value(m, control) for m in factors])
    treatment_values = np.array([factor_value(m, treatment) for m in factors])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratios = np.log(treatment_values / control_values)
    total_control = float(np.prod(control_values))
    total_treatment = float(np.prod(treatment_values))
    total_log = float(log_ratios.sum())
    shares = log_ratios / total_log if np.isfinite(total_log) and total_log != 0 else np.full(len(factors), np.nan)
    lifts = [
        FactorLift(m.name, float(c), float(t), float(t / c - 1) if c else float("nan"), float(s))
        for m, c, t, s in zip(factors, control_values, treatment_values, shares, strict=True)
    ]
    rel = total_treatment / total_control - 1 if total_control else float("nan")
    return Decomposition(name, arm, total_control, total_treatment, float(rel), lifts)
