"""The whole analysis of one experiment: every metric in every arm against control, corrected for
multiplicity, guardrails, the sample ratio check, decompositions and a decision per arm."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtr.abtest.decisions import (
    Decision,
    GuardrailResult,
    SampleRatioCheck,
    adjust_p_values,
    decide,
    guardrail_test,
    sample_ratio_check,
)
from mtr.abtest.decomposition import Decomposition, decompose
from mtr.abtest.effects import Comparison, arm_estimates, compare
from mtr.abtest.power import minimum_detectable_effect
from mtr.abtest.spec import Correction, DecompositionSpec, MetricSpec, check_chain
from mtr.abtest.units import Arms
from mtr.errors import InputError


@dataclass(frozen=True)
class MetricResult:
    """One metric in one treatment arm against control.

    Attributes:
        metric: the metric's spec.
        arm: the treatment arm.
        n_control: control units.
        n_treatment: treatment units.
        effect: the comparison reported (CUPED-adjusted when the metric has a covariate).
        unadjusted: the same comparison without CUPED.
        cuped_theta: the CUPED coefficient, or None without a covariate.
        variance_reduction: 1 - var(adjusted difference) / var(unadjusted difference), or None.
        p_holm: Holm-adjusted p-value across primary and secondary tests (None for guardrails).
        p_bh: Benjamini-Hochberg-adjusted p-value across the same family.
        significant: below alpha after the configured correction (guardrails: never set).
        guardrail: the non-inferiority result, for guardrail metrics.
        mde: absolute minimum detectable effect at the analysis's power with these arm sizes
            (with CUPED when used).
        mde_unadjusted: the same without CUPED.
    """

    metric: MetricSpec
    arm: str
    n_control: int
    n_treatment: int
    effect: Comparison
    unadjusted: Comparison
    cuped_theta: float | None
    variance_reduction: float | None
    p_holm: float | None = None
    p_bh: float | None = None
    significant: bool = False
    guardrail: GuardrailResult | None = None
    mde: float = math.nan
    mde_unadjusted: float = math.nan


@dataclass(frozen=True)
class AnalysisResult:
    """Everything `mtr ab analyze` reports."""

    control: str
    arms: list[str]
    alpha: float
    correction: Correction
    sample_ratio: SampleRatioCheck
    metrics: list[MetricResult]
    decompositions: list[Decomposition]
    decisions: dict[str, tuple[Decision, str]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes None)."""
        return _clean(dataclasses.asdict(self))


def analyze(
    arms: Arms,
    metrics: Sequence[MetricSpec],
    decompositions: Sequence[DecompositionSpec] = (),
    alpha: float = 0.05,
    correction: Correction = "holm",
    expected_share: Mapping[str, float] | None = None,
    srm_threshold: float = 0.001,
    power: float = 0.8,
) -> AnalysisResult:
    """Analyse an experiment split into arms.

    Args:
        arms: per-unit columns by arm, control first.
        metrics: the metrics, with their roles.
        decompositions: products of chained metrics whose lift is split into factors.
        alpha: two-sided level of the effect intervals and tests; guardrails use it one-sided.
        correction: "holm" (family-wise error) or "fdr_bh" (false discovery rate) for significance.
        expected_share: designed share of units per arm for the sample ratio check (None = equal).
        srm_threshold: p-value below which the sample ratio check fails.
        power: power used for the minimum detectable effects.
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    names = [m.name for m in metrics]
    if len(set(names)) != len(names) or not names:
        raise InputError(f"metric names must be unique and non-empty, got {names}")
    by_name = {m.name: m for m in metrics}
    chains = [(d, check_chain(d, by_name)) for d in decompositions]
    srm = sample_ratio_check({a: arms.size(a) for a in arms.names}, expected_share, srm_threshold)
    results = [r for metric in metrics for r in _metric_results(arms, metric, alpha, power)]
    results = _correct(results, alpha, correction)
    decisions = {arm: _decide(arm, results, srm.mismatch) for arm in arms.names[1:]}
    control = arms.columns[arms.control]
    decomposed = [decompose(d.name, arm, f, control, arms.columns[arm]) for d, f in chains for arm in arms.names[1:]]
    return AnalysisResult(arms.control, arms.names, alpha, correction, srm, results, decomposed, decisions)


def _metric_results(arms: Arms, metric: MetricSpec, alpha: float, power: float) -> list[MetricResult]:
    values = [arms.columns[a][metric.value_column] for a in arms.names]
    denominators = None if metric.denominator is None else [arms.columns[a][metric.denominator] for a in arms.names]
    raw, _ = arm_estimates(values, denominators)
    adjusted, theta = raw, None
    if metric.covariate is not None:
        covariates = [arms.columns[a][metric.covariate] for a in arms.names]
        adjusted, theta = arm_estimates(values, denominators, covariates)
    results = []
    for i, arm in enumerate(arms.names[1:], start=1):
        effect = compare(adjusted[0], adjusted[i], alpha)
        unadjusted = compare(raw[0], raw[i], alpha)
        reduction = None if theta is None else 1 - (effect.abs_se / unadjusted.abs_se) ** 2
        guardrail = guardrail_test(metric, effect, alpha) if metric.role == "guardrail" else None
        n_c, n_t = raw[0].n, raw[i].n
        results.append(
            MetricResult(
                metric=metric,
                arm=arm,
                n_control=n_c,
                n_treatment=n_t,
                effect=effect,
                unadjusted=unadjusted,
                cuped_theta=theta,
                variance_reduction=reduction,
                guardrail=guardrail,
                mde=_mde(effect, n_c, n_t, alpha, power),
                mde_unadjusted=_mde(unadjusted, n_c, n_t, alpha, power),
            )
        )
    return results


def _mde(comparison: Comparison, n_control: int, n_treatment: int, alpha: float, power: float) -> float:
    """Minimum detectable effect from the per-unit spread behind `comparison`'s standard error."""
    ratio = n_treatment / n_control
    sd = comparison.abs_se * math.sqrt(n_control / (1 + 1 / ratio))
    if not sd > 0:
        return math.nan
    return minimum_detectable_effect(n_control, sd, alpha=alpha, power=power, ratio=ratio)


def _correct(results: list[MetricResult], alpha: float, correction: Correction) -> list[MetricResult]:
    """Adjust p-values across every primary and secondary metric in every arm."""
    family = [i for i, r in enumerate(results) if r.metric.role != "guardrail"]
    p_values = [results[i].effect.p_value for i in family]
    holm, bh = adjust_p_values(p_values, "holm"), adjust_p_values(p_values, "fdr_bh")
    corrected = list(results)
    for i, p_holm, p_bh in zip(family, holm, bh, strict=True):
        chosen = p_holm if correction == "holm" else p_bh
        corrected[i] = dataclasses.replace(
            results[i], p_holm=float(p_holm), p_bh=float(p_bh), significant=bool(chosen < alpha)
        )
    return corrected


def _decide(arm: str, results: list[MetricResult], mismatch: bool) -> tuple[Decision, str]:
    mine = [r for r in results if r.arm == arm]
    primary = [(r.metric, r.effect, r.significant) for r in mine if r.metric.role == "primary"]
    guardrails = [r.guardrail for r in mine if r.guardrail is not None]
    return decide(primary, guardrails, mismatch)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value
