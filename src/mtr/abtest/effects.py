"""Effect estimates: the delta method for ratio metrics, CUPED, and two-arm comparisons.

Every metric is reduced to an arm-level estimate (a mean, or a ratio of sums) and its per-unit
influence values; the estimate's variance is var(influence) / n. For a mean the influence is the
centred value; for a ratio of sums R = sum(y) / sum(d) it is the delta-method linearisation
(y - R d) / mean(d). CUPED then subtracts theta * (x - mean x) from the influence, which works the same
way for both kinds (Deng et al. 2013; the ratio case as in Deng, Knoblich and Lu 2018).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ArmEstimate:
    """One arm's metric estimate.

    Attributes:
        n: units in the arm.
        estimate: the mean or ratio (CUPED-adjusted when a covariate was used).
        variance: variance of `estimate` (not of a unit).
    """

    n: int
    estimate: float
    variance: float


def linearize(values: np.ndarray, denominator: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Estimate and per-unit influence values.

    Args:
        values: [n] per-unit values (a mean metric) or numerators (a ratio metric).
        denominator: [n] per-unit denominators for a ratio of sums, or None for a mean.

    Returns:
        The estimate and the influence values [n], whose variance / n is the estimate's variance.
    """
    if denominator is None:
        estimate = float(values.mean())
        return estimate, values - estimate
    ratio = float(values.sum() / denominator.sum())
    return ratio, (values - ratio * denominator) / denominator.mean()


def cuped_theta(influences: list[np.ndarray], covariates: list[np.ndarray]) -> float:
    """The CUPED coefficient cov(influence, x) / var(x), pooled over arms with x centred within arm.

    Centring within arm keeps a (random) covariate imbalance between arms out of theta.

    Args:
        influences: per arm, influence values [n_arm] (already centred within arm).
        covariates: per arm, the pre-period covariate [n_arm].
    """
    centred = [x - x.mean() for x in covariates]
    numerator = sum(float(np.dot(phi, x)) for phi, x in zip(influences, centred, strict=True))
    denominator = sum(float(np.dot(x, x)) for x in centred)
    return numerator / denominator if denominator > 0 else 0.0


def arm_estimates(
    values: list[np.ndarray],
    denominators: list[np.ndarray] | None = None,
    covariates: list[np.ndarray] | None = None,
) -> tuple[list[ArmEstimate], float]:
    """Estimates for every arm of one metric, CUPED-adjusted when covariates are given.

    Args:
        values: per arm, per-unit values or numerators [n_arm].
        denominators: per arm, per-unit denominators [n_arm] for a ratio metric.
        covariates: per arm, pre-period covariates [n_arm] for CUPED.

    Returns:
        One `ArmEstimate` per arm, and theta (0.0 without covariates).
    """
    linear = [linearize(v, None if denominators is None else d) for v, d in _pairs(values, denominators)]
    influences = [phi for _, phi in linear]
    theta = 0.0
    shifts = [0.0] * len(values)
    if covariates is not None:
        theta = cuped_theta(influences, covariates)
        grand_mean = float(np.concatenate(covariates).mean())
        # The adjusted estimate moves each arm by theta times its covariate imbalance.
        shifts = [theta * (float(x.mean()) - grand_mean) for x in covariates]
        influences = [phi - theta * (x - x.mean()) for phi, x in zip(influences, covariates, strict=True)]
    estimates = [
        ArmEstimate(len(phi), estimate - shift, float(phi.var(ddof=1)) / len(phi))
        for (estimate, _), phi, shift in zip(linear, influences, shifts, strict=True)
    ]
    return estimates, theta


def _pairs(values: list[np.ndarray], denominators: list[np.ndarray] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    if denominators is None:
        return [(v, v) for v in values]
    return list(zip(values, denominators, strict=True))


@dataclass(frozen=True)
class Comparison:
    """Treatment against control on one metric, with two-sided normal intervals.

    Attributes:
        control: control mean or ratio.
        treatment: treatment mean or ratio.
        abs_diff: treatment - control.
        abs_se: standard error of `abs_diff`.
        abs_ci: (low, high) interval of `abs_diff`.
        rel_diff: treatment / control - 1.
        rel_se: delta-method standard error of `rel_diff`.
        rel_ci: (low, high) interval of `rel_diff`.
        z: abs_diff / abs_se.
        p_value: two-sided p-value of no difference.
    """

    control: float
    treatment: float
    abs_diff: float
    abs_se: float
    abs_ci: tuple[float, float]
    rel_diff: float
    rel_se: float
    rel_ci: tuple[float, float]
    z: float
    p_value: float


def compare(control: ArmEstimate, treatment: ArmEstimate, alpha: float = 0.05) -> Comparison:
    """Compare two independent arm estimates.

    The relative difference's variance is the delta method on t / c with independent arms:
    var(t) / c^2 + t^2 var(c) / c^4.
    """
    quantile = float(stats.norm.ppf(1 - alpha / 2))
    diff = treatment.estimate - control.estimate
    se = float(np.sqrt(control.variance + treatment.variance))
    c, t = control.estimate, treatment.estimate
    if c != 0:
        rel = t / c - 1
        rel_se = float(np.sqrt(treatment.variance / c**2 + t**2 * control.variance / c**4))
    else:
        rel, rel_se = float("nan"), float("nan")
    z = diff / se if se > 0 else (0.0 if diff == 0 else float("inf") * np.sign(diff))
    p_value = float(2 * stats.norm.sf(abs(z)))
    return Comparison(
        control=c,
        treatment=t,
        abs_diff=diff,
        abs_se=se,
        abs_ci=(diff - quantile * se, diff + quantile * se),
        rel_diff=rel,
        rel_se=rel_se,
        rel_ci=(rel - quantile * rel_se, rel + quantile * rel_se),
        z=float(z),
        p_value=p_value,
    )
