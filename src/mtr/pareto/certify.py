"""Certified selection: judge trials on interval bounds and report the chosen one on users it never saw.

Why: a study scores a few hundred policies on logs whose effective sample size is a few hundred, so a
rare-event constraint (unsubscribes) rests on zero or one matched event per trial. Keeping the trials whose
point estimate is within budget keeps the lucky ones; taking the largest estimate of the objective picks the
one most overestimated (the optimiser's curse); re-estimating it on the same rows repeats both errors.

- The study's opportunities are split by user (`holdout_rows`), so that the two parts are independent:
  the selection part scores every trial, the held-out part is used once, for the chosen point.
- A trial is certified when, on the selection part, every limit holds by its interval (`mtr.pareto.limits`):
  estimate + z * SE within each budget, estimate - z * SE above each floor; "max_<objective>" takes the
  certified trial with the largest estimate - z * SE.
- A rare binary event defeats the sample's standard error: with no matched event, the weighted residuals
  hardly vary and the interval collapses onto the lucky estimate. So the SE of a binary reward is at least
  the one its events would have if the reward model's probabilities were right (`event_noise_floor`):
  sqrt(sum_i w_i^2 rhat_i (1 - rhat_i)) / n over the observed rows, w the importance weight and rhat the
  model's probability of the logged action.
- The chosen trial is re-estimated on the held-out part with the same interval. It becomes the operating
  point only when that re-estimate is certified too; its re-estimate is what is reported and written.
- Otherwise the operating point is "send nothing" (`SEND_NOTHING`): the one policy whose capped harms
  (unsubscribes, send volume) are zero without any estimate, whereas the logging policy's own value is
  itself an estimate and may break the budget. A floor (a guardrail on retention) is not met by silence for
  sure, so the summary reports sending nothing's own estimate and interval of it. The verdict names the
  data that would certify the best point (`opportunities_needed`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mtr.errors import InputError
from mtr.ope.estimators import Estimate, get_estimator
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.ope.policy_rows import PolicyRows
from mtr.pareto.limits import Limits
from mtr.scoring.policy import PolicyConfig, PolicyDecision

# No score clears the largest float32 (the fast evaluator scores in float32), so the policy sends nothing.
SEND_NOTHING = PolicyConfig(threshold=float(np.finfo(np.float32).max))


def holdout_rows(user: np.ndarray, share: float, seed: int) -> np.ndarray:
    """[G] True for the opportunities of a seeded random `share` of the distinct users (the held-out part)."""
    users = np.unique(user)
    held = round(share * users.size)
    if not 0 < held < users.size:
        raise InputError(f"holdout: {share} of {users.size} users leaves one part empty; use more users")
    return np.isin(user, np.random.default_rng(seed).permutation(users)[:held])


def part_feedback(feedback: LoggedFeedback, rows: np.ndarray) -> LoggedFeedback:
    """The logs with every row outside `rows` [G] unobserved, so that every estimator averages over `rows` only."""
    return dataclasses.replace(feedback, mask=feedback.mask & rows[:, None])


def estimates_on(feedback: LoggedFeedback, decision: PolicyDecision, estimator: str) -> dict[str, Estimate]:
    """Each reward's estimate by one estimator, its standard error at least the event noise floor (the policy's
    per-row inputs are gathered once for both: this runs for every trial)."""
    chosen = get_estimator(estimator)
    rows = PolicyRows.of(feedback, decision)
    if not chosen.applies(rows.direct is not None):
        raise InputError(f"estimator: {estimator!r} needs the reward model's predictions")
    value, error = chosen.estimate(rows)
    floor = event_noise_floor(feedback, rows)
    return {
        reward: Estimate(float(value[k]), float(np.fmax(error[k], floor[k])), bool(rows.bounded[k]))
        for k, reward in enumerate(feedback.reward_names)
    }


def event_noise_floor(feedback: LoggedFeedback, rows: PolicyRows) -> np.ndarray:
    """[K] standard error of the importance-weighted events alone under the reward model (see the module
    docstring); 0 for a reward that is not binary or without a reward model.

    Args:
        rows: the target policy's per-row inputs (`PolicyRows.of(feedback, decision)`); weight [K, G], 0 where
            unobserved."""
    if feedback.predicted is None:
        return np.zeros(len(feedback.reward_names))
    p = np.clip(feedback.logged_prediction, 0.0, 1.0)
    variance = np.einsum("kg,kg->k", rows.weight**2, p * (1.0 - p))
    binary = ((rows.rewards == 0) | (rows.rewards == 1)).all(axis=1)
    return np.where(binary, np.sqrt(variance) / np.maximum(rows.n, 1), 0.0)


def bounds(estimate: Estimate, z: float) -> tuple[float, float]:
    """(estimate - z * SE, estimate + z * SE), within [0, 1] for a binary reward (a rate's bounds never leave
    the range a rate can take): the interval every certification and report uses."""
    half = z * estimate.standard_error
    low, high = estimate.value - half, estimate.value + half
    return (max(low, 0.0), min(high, 1.0)) if estimate.bounded else (low, high)


def interval_bounds(estimates: Mapping[str, Estimate], z: float) -> tuple[dict[str, float], dict[str, float]]:
    """(lower bounds, upper bounds) of every reward's interval."""
    pairs = {reward: bounds(e, z) for reward, e in estimates.items()}
    return {r: p[0] for r, p in pairs.items()}, {r: p[1] for r, p in pairs.items()}


def slacks(estimates: Mapping[str, Estimate], limits: Limits, z: float) -> dict[str, float]:
    """Per limit, how far its interval bound is past it: certified when every one is <= 0 (NaN: not certified)."""
    return limits.slacks(*interval_bounds(estimates, z))


def opportunities_needed(estimates: Mapping[str, Estimate], limits: Limits, z: float, n: float) -> float:
    """Opportunities at which every interval bound would clear its limit, were the estimates to stay and the
    standard errors shrink as 1 / sqrt(n): max over limits of n (z SE / margin)^2, the margin being the
    estimate's distance inside the limit; inf when an estimate itself fails a limit (no data certifies it).

    Args:
        estimates: the point's estimates on `n` opportunities.
        limits: the study's budgets and floors.
        z: interval half-width in standard errors.
        n: opportunities the estimates rest on.
    """
    needed = 0.0
    for reward, margin in limits.margins({r: e.value for r, e in estimates.items()}):
        error = estimates[reward].standard_error
        if not margin > 0 or not math.isfinite(error):
            return math.inf
        needed = max(needed, n * (z * error / margin) ** 2)
    return needed


@dataclass(frozen=True)
class Verdict:
    """Whether the chosen point is the operating point, and why.

    Args:
        certified: the re-estimate on held-out users meets every budget by its upper bound.
        reason: one sentence for the summary.
        opportunities_needed: study opportunities (both parts) that would certify the best point, or None when
            it is certified; inf when its estimate itself breaks a budget.
    """

    certified: bool
    reason: str
    opportunities_needed: float | None = None


def held_out_verdict(
    trial: int,
    held_out: Mapping[str, Estimate],
    limits: Limits,
    z: float,
    n_held_out: float,
    share: float,
) -> Verdict:
    """The verdict on the chosen trial's re-estimate on held-out users (`n_held_out` opportunities, `share`
    of the users): certified when every limit holds by its interval."""
    broken = limits.broken(*interval_bounds(held_out, z))
    if not broken:
        return Verdict(True, f"trial {trial} is certified on held-out users")
    needed = opportunities_needed(held_out, limits, z, n_held_out) / share
    return Verdict(
        False, f"trial {trial}, chosen on the selection part, fails on held-out users: {', '.join(broken)}", needed
    )


def nothing_certified(closest: int, needed: float) -> Verdict:
    """The verdict when no trial is certified on the selection part; trial `closest` needs the fewest opportunities."""
    return Verdict(
        False, f"no trial's interval bounds meet every limit on the selection part (closest: trial {closest})", needed
    )
