"""Planning: sample size, power and minimum detectable effect, for proportions and means, with and
without CUPED.

statsmodels' `NormalIndPower` does the computation on a standardised effect. What it lacks is put
in front of it: unequal arm variances (a proportion's variance moves with the effect) are folded into
one effective standard deviation, and CUPED with covariate correlation rho scales the variance by
(1 - rho^2).
"""

from __future__ import annotations

import math

from statsmodels.stats.power import NormalIndPower

from mtr.errors import InputError

_POWER = NormalIndPower()


def effective_sd(sd_control: float, sd_treatment: float | None = None, ratio: float = 1.0, rho: float = 0.0) -> float:
    """One standard deviation that gives the same difference variance as two unequal ones.

    var(diff) = sd_c^2 / n + sd_t^2 / (ratio n) = sd_eff^2 (1 + 1 / ratio) / n, times (1 - rho^2) with CUPED.

    Args:
        sd_control: per-unit standard deviation in control.
        sd_treatment: per-unit standard deviation in treatment (default: as control).
        ratio: treatment units per control unit.
        rho: correlation of the metric with the CUPED covariate (0 = no CUPED).
    """
    if not 0 <= abs(rho) < 1:
        raise InputError(f"CUPED correlation rho must be in (-1, 1), got {rho}")
    if ratio <= 0 or sd_control <= 0:
        raise InputError(f"ratio and sd must be positive, got ratio={ratio}, sd={sd_control}")
    sd_t = sd_control if sd_treatment is None else sd_treatment
    variance = (sd_control**2 + sd_t**2 / ratio) / (1 + 1 / ratio)
    return math.sqrt(variance * (1 - rho**2))


def sample_size(
    mde: float,
    sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    rho: float = 0.0,
    sd_treatment: float | None = None,
) -> float:
    """Control units needed to detect an absolute difference `mde` with a two-sided z-test.

    Returns:
        Units in control; the treatment needs `ratio` times as many.
    """
    if mde == 0:
        raise InputError("the minimum detectable effect must be non-zero")
    effect = abs(mde) / effective_sd(sd, sd_treatment, ratio, rho)
    return float(_POWER.solve_power(effect_size=effect, alpha=alpha, power=power, ratio=ratio))


def sample_size_proportions(
    baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0, rho: float = 0.0
) -> float:
    """Control units needed to detect a change of a proportion from `baseline` to `baseline + mde`."""
    treated = baseline + mde
    if not (0 < baseline < 1 and 0 < treated < 1):
        raise InputError(f"proportions must lie in (0, 1), got baseline={baseline}, baseline + mde={treated}")
    sd_c, sd_t = math.sqrt(baseline * (1 - baseline)), math.sqrt(treated * (1 - treated))
    return sample_size(mde, sd_c, alpha, power, ratio, rho, sd_treatment=sd_t)


def power_at(
    n_control: float, mde: float, sd: float, alpha: float = 0.05, ratio: float = 1.0, rho: float = 0.0
) -> float:
    """Power of a two-sided z-test with `n_control` control units to detect `mde`."""
    effect = abs(mde) / effective_sd(sd, None, ratio, rho)
    return float(_POWER.power(effect_size=effect, nobs1=n_control, alpha=alpha, ratio=ratio))


def minimum_detectable_effect(
    n_control: float, sd: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0, rho: float = 0.0
) -> float:
    """Smallest absolute difference detected with probability `power` given `n_control` control units."""
    effect = _POWER.solve_power(nobs1=n_control, alpha=alpha, power=power, ratio=ratio)
    return float(effect) * effective_sd(sd, None, ratio, rho)
