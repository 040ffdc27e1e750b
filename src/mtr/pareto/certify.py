"""Certified selection: judge trials on interval bounds and report the chosen one on users it never saw.

Why: a study scores a few hundred policies on logs whose effective sample size is a few hundred, so a
rare-event constraint (unsubscribes) rests on zero or one matched event per trial. Keeping the trials whose
point estimate is within budget keeps the lucky ones; taking the largest estimate of the objective picks the
one most overestimated (the optimiser's curse); re-estimating it on the same rows repeats both errors.

- The study's opportunities are split by user (`holdout_rows`), so that the two parts are independent:
  the selection part scores every trial, the held-out part is used once, for the chosen point.
- A trial is certified when, on the selection part, estimate + z * SE of every constrained reward is within
  its budget; "max_<objective>" takes the certified trial with the largest estimate - z * SE.
- A rare binary event defeats the sample's standard error: with no matched event, the weighted residuals
  hardly vary and the interval collapses onto the lucky estimate. So the SE of a binary reward is at least
  the one its events would have if the reward model's probabilities were right (`event_noise_floor`):
  sqrt(sum_i w_i^2 rhat_i (1 - rhat_i)) / n over the observed rows, w the importance weight and rhat the
  model's probability of the logged action.
- The chosen trial is re-estimated on the held-out part with the same interval. It becomes the operating
  point only when that re-estimate is certified too; its re-estimate is what is reported and written.
- Otherwise the operating point is "send nothing" (`SEND_NOTHING`): the one policy whose constrained
  harms (unsubscribes, send volume) are zero without any estimate, whereas the logging policy's own value
  is itself an estimate and may break the budget. The verdict names the data that would certify the best
  point (`opportunities_needed`).
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


def slacks(estimates: Mapping[str, Estimate], constraints: Mapping[str, float], z: float) -> dict[str, float]:
    """Per constrained reward, upper bound minus budget: certified when every one is <= 0 (NaN: not certified)."""
    return {reward: bounds(estimates[reward], z)[1] - cap for reward, cap in constraints.items()}


def opportunities_needed(
    estimates: Mapping[str, Estimate], constraints: Mapping[str, float], z: float, n: float
) -> float:
    """Opportunities at which every upper bound would fall within budget, were the estimates to stay and the
    standard errors shrink as 1 / sqrt(n): max over constraints of n (z SE / (budget - estimate))^2; inf when
    an estimate itself is over budget (no amount of data certifies it).

    Args:
        estimates: the point's estimates on `n` opportunities.
        constraints: reward -> budget.
        z: interval half-width in standard errors.
        n: opportunities the estimates rest on.
    """
    needed = 0.0
    for reward, cap in constraints.items():
        e = estimates[reward]
        if not e.value < cap or not math.isfinite(e.standard_error):
            return math.inf
        needed = max(needed, n * (z * e.standard_error / (cap - e.value)) ** 2)
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
    constraints: Mapping[str, float],
    z: float,
    n_held_out: float,
    share: float,
) -> Verdict:
    """The verdict on the chosen trial's re-estimate on held-out users (`n_held_out` opportunities, `share`
    of the users): certified when every upper bound is within budget."""
    broken = {r: s for r, s in slacks(held_out, constraints, z).items() if not s <= 0}
    if not broken:
        return Verdict(True, f"trial {trial} is certified on held-out users")
    needed = opportunities_needed(held_out, constraints, z, n_held_out) / share
    over = ", ".join(f"{r} upper bound {bounds(held_out[r], z)[1]:.5g} > {constraints[r]:.5g}" for r in broken)
    return Verdict(False, f"trial {trial}, chosen on the selection part, fails on held-out users: {over}", needed)


def nothing_certified(closest: int, needed: float) -> Verdict:
    """The verdict when no trial is certified on the selection part; trial `closest` needs the fewest opportunities."""
    return Verdict(
        False, f"no trial's upper bounds are within budget on the selection part (closest: trial {closest})", needed
    )
