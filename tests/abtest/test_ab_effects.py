"""Effect estimators against statsmodels and scipy, and the delta method and CUPED on known cases."""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from mtr.abtest.effects import arm_estimates, compare


def _compare(control, treatment, **kwargs):
    (c, t), _ = arm_estimates([control, treatment], **kwargs)
    return compare(c, t)


def test_mean_difference_interval_matches_statsmodels_and_welch():
    rng = np.random.default_rng(0)
    control, treatment = rng.gamma(2.0, 3.0, 4000), rng.gamma(2.2, 3.0, 6000)
    result = _compare(control, treatment)
    means = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    assert result.abs_ci == pytest.approx(means.zconfint_diff(usevar="unequal"), rel=1e-9)
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    low, high = welch.confidence_interval(0.95)
    assert result.abs_ci == pytest.approx((low, high), rel=1e-3)
    assert result.z == pytest.approx(welch.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(means.ztest_ind(usevar="unequal")[1], rel=1e-9)


def test_proportion_difference_matches_statsmodels_wald_interval_and_test():
    rng = np.random.default_rng(1)
    control, treatment = (rng.random(20000) < 0.10).astype(float), (rng.random(20000) < 0.11).astype(float)
    result = _compare(control, treatment)
    counts = (treatment.sum(), len(treatment), control.sum(), len(control))
    low, high = proportion.confint_proportions_2indep(*counts, method="wald", compare="diff")
    # statsmodels uses p(1-p)/n, the estimator the unbiased variance: the widths differ by sqrt(n/(n-1)).
    assert result.abs_ci == pytest.approx((low, high), abs=1e-6)
    assert result.abs_ci[1] - result.abs_ci[0] == pytest.approx(high - low, rel=1e-4)
    z_test = proportion.test_proportions_2indep(*counts, method="wald", compare="diff")
    assert result.p_value == pytest.approx(z_test.pvalue, rel=1e-3)


def test_delta_method_is_exact_when_the_denominator_is_constant():
    rng = np.random.default_rng(2)
    numerator = rng.poisson(3.0, 5000).astype(float)
    denominator = np.full(5000, 4.0)
    (estimate,), _ = arm_estimates([numerator], [denominator])
    assert estimate.estimate == pytest.approx(numerator.mean() / 4)
    assert estimate.variance == pytest.approx(numerator.var(ddof=1) / 16 / 5000)


def test_delta_method_matches_a_bootstrap_over_units_on_clustered_data():
    rng = np.random.default_rng(3)
    # Users with their own engagement propensity: sends per user vary, engagements cluster by user.
    sends = rng.poisson(5.0, 3000).astype(float) + 1
    propensity = rng.beta(1.0, 4.0, 3000)
    engagements = rng.binomial(sends.astype(int), propensity).astype(float)
    (estimate,), _ = arm_estimates([engagements], [sends])
    draws = rng.integers(0, 3000, size=(2000, 3000))
    bootstrap = engagements[draws].sum(axis=1) / sends[draws].sum(axis=1)
    assert np.sqrt(estimate.variance) == pytest.approx(bootstrap.std(), rel=0.08)
    # Treating sends as independent (binomial over all sends) understates the spread here.
    naive = np.sqrt(estimate.estimate * (1 - estimate.estimate) / sends.sum())
    assert naive < 0.8 * np.sqrt(estimate.variance)


def test_relative_interval_matches_a_bootstrap():
    rng = np.random.default_rng(4)
    control, treatment = rng.exponential(2.0, 5000), rng.exponential(2.3, 5000)
    result = _compare(control, treatment)
    draws = rng.integers(0, 5000, size=(2000, 5000))
    ratios = treatment[draws].mean(axis=1) / control[draws[::-1]].mean(axis=1) - 1
    assert result.rel_se == pytest.approx(ratios.std(), rel=0.08)
    assert result.rel_diff == pytest.approx(treatment.mean() / control.mean() - 1)


@pytest.mark.parametrize("rho", [0.3, 0.7])
def test_cuped_reduces_variance_by_rho_squared_and_keeps_the_effect(rho):
    rng = np.random.default_rng(5)
    n = 40000
    covariate = rng.normal(10, 2, 2 * n)
    noise = rng.normal(0, 2, 2 * n)
    metric = rho * covariate + np.sqrt(1 - rho**2) * noise
    metric[n:] += 0.05  # the true effect
    control, treatment = metric[:n], metric[n:]
    x_control, x_treatment = covariate[:n], covariate[n:]
    raw = _compare(control, treatment)
    (c, t), theta = arm_estimates([control, treatment], covariates=[x_control, x_treatment])
    adjusted = compare(c, t)
    assert theta == pytest.approx(rho, rel=0.03)  # cov / var(x) = rho * 4 / 4
    assert 1 - (adjusted.abs_se / raw.abs_se) ** 2 == pytest.approx(rho**2, abs=0.02)
    assert adjusted.abs_ci[0] < 0.05 < adjusted.abs_ci[1]
    assert abs(adjusted.abs_diff - 0.05) < 3 * adjusted.abs_se


def test_cuped_on_a_ratio_metric_reduces_variance_when_the_covariate_predicts_it():
    rng = np.random.default_rng(6)
    n = 20000
    activity = rng.gamma(2.0, 1.0, 2 * n)  # pre-period engagements per send, per user
    sends = rng.poisson(4.0, 2 * n).astype(float) + 1
    engagements = rng.poisson(sends * 0.1 * activity).astype(float)
    groups = [slice(0, n), slice(n, 2 * n)]
    values, denominators, covariates = ([a[g] for g in groups] for a in (engagements, sends, activity))
    raw, _ = arm_estimates(values, denominators)
    adjusted, _ = arm_estimates(values, denominators, covariates)
    for before, after in zip(raw, adjusted, strict=True):
        assert after.variance < 0.7 * before.variance
        assert after.estimate == pytest.approx(before.estimate, rel=0.02)
