"""Planning functions against statsmodels' own power computations and closed forms."""

import math

import pytest
from scipy import stats
from statsmodels.stats.power import tt_ind_solve_power
from statsmodels.stats.proportion import power_proportions_2indep

from mtr.abtest.power import minimum_detectable_effect, power_at, sample_size, sample_size_proportions
from mtr.errors import InputError


def test_mean_sample_size_matches_the_t_test_solver_and_the_closed_form():
    n = sample_size(mde=0.5, sd=10.0, alpha=0.05, power=0.8)
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert n == pytest.approx(2 * (z * 10.0 / 0.5) ** 2, rel=1e-4)
    assert n == pytest.approx(tt_ind_solve_power(effect_size=0.05, alpha=0.05, power=0.8), rel=1e-3)


def test_proportion_sample_size_reaches_the_wanted_power_in_statsmodels():
    n = sample_size_proportions(baseline=0.10, mde=0.01, power=0.8, ratio=2.0)
    achieved = power_proportions_2indep(0.01, 0.10, nobs1=n, ratio=2.0, return_results=False)
    # statsmodels uses the pooled variance under the null; ours is unpooled throughout.
    assert achieved == pytest.approx(0.8, abs=0.01)
    assert 10000 < n < 20000


def test_cuped_divides_the_sample_size_by_one_minus_rho_squared():
    plain = sample_size_proportions(0.3, 0.02)
    with_cuped = sample_size_proportions(0.3, 0.02, rho=0.6)
    assert with_cuped == pytest.approx(plain * (1 - 0.36), rel=1e-4)


def test_power_and_minimum_detectable_effect_invert_the_sample_size():
    n = sample_size(mde=1.0, sd=8.0, ratio=0.5, rho=0.4)
    assert power_at(n, 1.0, 8.0, ratio=0.5, rho=0.4) == pytest.approx(0.8, rel=1e-4)
    assert minimum_detectable_effect(n, 8.0, ratio=0.5, rho=0.4) == pytest.approx(1.0, rel=1e-4)
    assert minimum_detectable_effect(4 * n, 8.0, ratio=0.5, rho=0.4) == pytest.approx(0.5, rel=1e-4)
    assert not math.isclose(power_at(n, 1.0, 8.0, ratio=0.5), 0.8, abs_tol=0.01)


def test_impossible_plans_fail_naming_the_problem():
    with pytest.raises(InputError, match="proportions must lie in"):
        sample_size_proportions(0.95, 0.1)
    with pytest.raises(InputError, match="rho"):
        sample_size(1.0, 2.0, rho=1.0)
    with pytest.raises(InputError, match="non-zero"):
        sample_size(0.0, 2.0)


def test_plan_command_prints_units_without_and_with_cuped(capsys):
    from mtr.cli import main

    main(["ab", "plan", "--baseline", "0.19", "--mde", "0.05", "--relative", "true", "--rho", "0.4"])
    lines = capsys.readouterr().out.splitlines()
    plain, cuped = sample_size_proportions(0.19, 0.0095), sample_size_proportions(0.19, 0.0095, rho=0.4)
    assert lines[0].startswith(f"without CUPED: {plain:,.0f} control units")
    assert lines[1].startswith(f"with CUPED (rho=0.4): {cuped:,.0f} control units")
    with pytest.raises(InputError, match="exactly one of 'baseline'"):
        main(["ab", "plan", "--mde", "0.1"])
