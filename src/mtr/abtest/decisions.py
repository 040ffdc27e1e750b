"""Reading many tests at once: multiple-testing correction, the sample ratio check, guardrails and
the ship / do not ship / inconclusive summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from mtr.abtest.effects import Comparison
from mtr.abtest.spec import MetricSpec
from mtr.errors import InputError

GuardrailStatus = Literal["pass", "fail", "inconclusive"]
Decision = Literal["ship", "do not ship", "inconclusive"]


def adjust_p_values(p_values: Sequence[float], method: str) -> np.ndarray:
    """Adjusted p-values across a family of tests ("holm" or "fdr_bh", as in statsmodels)."""
    if len(p_values) == 0:
        return np.array([])
    return multipletests(np.asarray(p_values, dtype=float), method=method)[1]


@dataclass(frozen=True)
class SampleRatioCheck:
    """Chi-square goodness of fit of the observed arm sizes to the designed split.

    Attributes:
        observed: arm -> units.
        expected_share: arm -> designed share of units.
        chi2: the statistic.
        p_value: its p-value; below `threshold` the assignment is suspect.
        threshold: the p-value below which a mismatch is declared.
    """

    observed: dict[str, int]
    expected_share: dict[str, float]
    chi2: float
    p_value: float
    threshold: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold


def sample_ratio_check(
    observed: Mapping[str, int], expected_share: Mapping[str, float] | None, threshold: float = 0.001
) -> SampleRatioCheck:
    """Test the arm sizes against the designed split (equal shares when `expected_share` is None)."""
    arms = list(observed)
    shares = {a: 1.0 / len(arms) for a in arms} if expected_share is None else dict(expected_share)
    if set(shares) != set(arms):
        raise InputError(f"expected_share names arms {sorted(shares)}, but the analysed arms are {sorted(arms)}")
    if any(s <= 0 for s in shares.values()):
        raise InputError(f"expected_share must be positive for every arm, got {shares}")
    total_share = sum(shares.values())
    shares = {a: s / total_share for a, s in shares.items()}
    counts = np.array([observed[a] for a in arms], dtype=float)
    expected = np.array([shares[a] for a in arms]) * counts.sum()
    chi2, p_value = stats.chisquare(counts, expected)
    return SampleRatioCheck(dict(observed), shares, float(chi2), float(p_value), threshold)


@dataclass(frozen=True)
class GuardrailResult:
    """A non-inferiority test of one guardrail in one arm.

    Attributes:
        metric: the guardrail metric's name.
        harm: the estimated harm (positive = worse), in the margin's units.
        harm_bound: the one-sided (1 - alpha) upper bound of the harm.
        harm_lower: the one-sided (1 - alpha) lower bound of the harm.
        margin: the acceptable harm.
        status: "pass" when the upper bound is below the margin (non-inferior), "fail" when the
            lower bound is above it (worse than the margin), else "inconclusive".
    """

    metric: str
    harm: float
    harm_bound: float
    harm_lower: float
    margin: float
    status: GuardrailStatus


def guardrail_test(metric: MetricSpec, comparison: Comparison, alpha: float) -> GuardrailResult:
    """Non-inferiority of `comparison` on a guardrail metric at one-sided level `alpha`."""
    assert metric.margin is not None
    sign = 1.0 if metric.better == "lower" else -1.0  # harm is an increase when lower is better
    estimate, se = (
        (comparison.rel_diff, comparison.rel_se) if metric.margin_relative else (comparison.abs_diff, comparison.abs_se)
    )
    harm = sign * estimate
    quantile = float(stats.norm.ppf(1 - alpha))
    upper, lower = harm + quantile * se, harm - quantile * se
    status: GuardrailStatus = "pass" if upper < metric.margin else ("fail" if lower > metric.margin else "inconclusive")
    return GuardrailResult(metric.name, harm, upper, lower, metric.margin, status)


def decide(
    primary: Sequence[tuple[MetricSpec, Comparison, bool]],
    guardrails: Sequence[GuardrailResult],
    sample_ratio_mismatch: bool,
) -> tuple[Decision, str]:
    """Summarise one arm.

    Args:
        primary: (metric, comparison, significant after correction) for each primary metric.
        guardrails: the arm's guardrail results.
        sample_ratio_mismatch: whether the experiment failed the sample ratio check.

    Returns:
        The decision and the reason, in words.
    """
    if sample_ratio_mismatch:
        return "inconclusive", "sample ratio mismatch: the assignment is broken, so no effect can be trusted"
    failed = [g for g in guardrails if g.status == "fail"]
    worse = [m.name for m, c, sig in primary if sig and _improves(m, c) is False]
    better = [m.name for m, c, sig in primary if sig and _improves(m, c)]
    if failed:
        return "do not ship", f"guardrail(s) worse than their margin: {', '.join(g.metric for g in failed)}"
    if worse:
        return "do not ship", f"primary metric(s) significantly worse: {', '.join(worse)}"
    unproven = [g.metric for g in guardrails if g.status != "pass"]
    if better and not unproven:
        checked = "every guardrail non-inferior" if guardrails else "no guardrails configured"
        return "ship", f"significantly better on {', '.join(better)}; {checked}"
    if better:
        return "inconclusive", f"better on {', '.join(better)}, but not shown non-inferior on {', '.join(unproven)}"
    return "inconclusive", "no primary metric moved significantly"


def _improves(metric: MetricSpec, comparison: Comparison) -> bool:
    return (comparison.abs_diff > 0) == (metric.better == "higher")
