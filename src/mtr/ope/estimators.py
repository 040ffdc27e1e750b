"""Off-policy evaluation: what a target policy would achieve, estimated from logs with propensities.

For every logged opportunity i (one group of candidates) with logged action a_i, logging propensity
mu_i = mu(a_i | x_i), reward r_ik for reward k and the target policy's probability pi_i = pi(a_i | x_i),
with importance weight w_i = pi_i / mu_i:

    IPS    V = mean_i  w_i r_ik
    SNIPS  V = sum_i w_i r_ik / sum_i w_i
    DR     V = mean_i [ sum_a pi(a | x_i) rhat_k(x_i, a) + w_i (r_ik - rhat_k(x_i, a_i)) ]

with rhat the reward model (the multi-task model's predictions: the direct method). Standard errors
come from each estimator's per-row influence values (for SNIPS by the delta method), 95% intervals
by the normal approximation, and the effective sample size is (sum w)^2 / sum w^2.

Missing labels: a reward whose label is missing for a row (an immature window, a task without a label
on that channel) is estimated on the rows that have it. The estimate is then the policy's value on
the opportunities whose label exists, which equals the value on all opportunities when labels are
missing independently of the action (true for maturity, which depends on time only).

Send volume is a reward too: r = 1 when the logged action is a send, and its reward model is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mtr.errors import InputError
from mtr.scoring.groups import CandidateGroups
from mtr.scoring.policy import PolicyDecision

Z_95 = 1.959963984540054
ESTIMATORS = ("ips", "snips", "dr")
SEND_VOLUME = "send_volume"


@dataclass(frozen=True)
class LoggedFeedback:
    """The logs, aligned with a candidate structure, with everything OPE needs that no policy changes.

    Args:
        groups: the candidate structure; group g is logged opportunity g.
        logged_index: [G] global candidate index of the logged action.
        propensity: [G] logging policy's probability of the logged action, in (0, 1].
        rewards: [G, K] observed rewards (0 where missing).
        mask: [G, K] bool, True where the reward is observed.
        predicted: [N, K] reward model's prediction for every candidate (for DR), or None.
        reward_names: K names.
    """

    groups: CandidateGroups
    logged_index: np.ndarray
    propensity: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    predicted: np.ndarray | None
    reward_names: tuple[str, ...]

    def __post_init__(self) -> None:
        g, k = self.groups.n_groups, len(self.reward_names)
        if self.logged_index.shape != (g,) or self.propensity.shape != (g,):
            raise InputError(f"logged feedback: logged_index and propensity must be [{g}]")
        if self.rewards.shape != (g, k) or self.mask.shape != (g, k):
            raise InputError(f"logged feedback: rewards and mask must be [{g}, {k}] ({list(self.reward_names)})")
        inside = (self.logged_index >= self.groups.starts) & (self.logged_index < self.groups.offsets[1:])
        if not np.all(inside):
            raise InputError(f"logged feedback: {int((~inside).sum())} logged actions are not among their candidates")
        if not np.all((self.propensity > 0) & (self.propensity <= 1)):
            raise InputError("logged feedback: column 'propensity' must be in (0, 1] (logged actions need support)")
        if self.predicted is not None and self.predicted.shape != (self.groups.n_candidates, k):
            raise InputError(f"logged feedback: predicted rewards must be [{self.groups.n_candidates}, {k}]")

    @cached_property
    def by_reward(self) -> tuple[np.ndarray, np.ndarray]:
        """[K, G] float64 masks and masked rewards, reward-major (computed once)."""
        observed = np.ascontiguousarray(self.mask.T, dtype=np.float64)
        return observed, np.ascontiguousarray(self.rewards.T, dtype=np.float64) * observed

    @cached_property
    def logged_prediction(self) -> np.ndarray:
        """[K, G] the reward model's prediction for each logged action (needs `predicted`)."""
        return np.ascontiguousarray(self.predicted[self.logged_index].T, dtype=np.float64)

    def with_send_volume(self) -> LoggedFeedback:
        """The same logs with one more reward, send volume (exactly modelled: 1 for sends)."""
        is_send = self.groups.is_send()
        rewards = np.column_stack([self.rewards, is_send[self.logged_index]])
        mask = np.column_stack([self.mask, np.ones(self.groups.n_groups, dtype=bool)])
        predicted = None if self.predicted is None else np.column_stack([self.predicted, is_send])
        return LoggedFeedback(
            self.groups, self.logged_index, self.propensity, rewards, mask, predicted, (*self.reward_names, SEND_VOLUME)
        )


@dataclass(frozen=True)
class Estimate:
    """One estimate of one reward's mean per opportunity."""

    value: float
    standard_error: float

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% normal-approximation confidence interval."""
        half = Z_95 * self.standard_error
        return self.value - half, self.value + half

    def to_dict(self) -> dict[str, float]:
        low, high = self.interval
        return {"value": self.value, "standard_error": self.standard_error, "ci_low": low, "ci_high": high}


@dataclass(frozen=True)
class OffPolicyResult:
    """Estimates per reward: estimates[reward][estimator], plus rows used and effective sample size."""

    estimates: dict[str, dict[str, Estimate]]
    n_rows: dict[str, int]
    effective_sample_size: dict[str, float]

    def value(self, reward: str, estimator: str) -> float:
        return self.estimates[reward][estimator].value

    def to_dict(self) -> dict[str, dict]:
        return {
            reward: {
                "n_rows": self.n_rows[reward],
                "effective_sample_size": self.effective_sample_size[reward],
                **{name: estimate.to_dict() for name, estimate in by_estimator.items()},
            }
            for reward, by_estimator in self.estimates.items()
        }


def evaluate(feedback: LoggedFeedback, target: PolicyDecision) -> OffPolicyResult:
    """IPS, SNIPS and (with predicted rewards) DR estimates of each reward's mean under `target`.

    All rewards are handled at once; a reward's missing rows contribute nothing.

    Args:
        feedback: the logs aligned with the candidates.
        target: the target policy's action distribution over the same candidates.
    """
    weight = target.probability_of(feedback.logged_index) / feedback.propensity  # [G]
    # Reward-major [K, G] arrays, so that every per-reward sum runs over contiguous memory.
    observed, rewards = feedback.by_reward
    n = observed.sum(axis=1)  # [K]
    w = weight * observed  # [K, G], 0 where the reward is missing
    estimates = {"ips": _mean_estimates(w * rewards, observed, n), "snips": _snips(w, rewards, observed, n)}
    if feedback.predicted is not None:
        direct = np.ascontiguousarray(target.expectation(feedback.predicted).T)  # [K, G]: sum_a pi(a) rhat(a)
        dr_terms = (direct + w * (rewards - feedback.logged_prediction)) * observed
        estimates["dr"] = _mean_estimates(dr_terms, observed, n)
    total, squares = w.sum(axis=1), (w**2).sum(axis=1)
    ess = np.divide(total**2, squares, out=np.zeros_like(total), where=squares > 0)
    names = feedback.reward_names
    return OffPolicyResult(
        {
            reward: {e: Estimate(float(value[k]), float(se[k])) for e, (value, se) in estimates.items()}
            for k, reward in enumerate(names)
        },
        {reward: int(n[k]) for k, reward in enumerate(names)},
        {reward: float(ess[k]) for k, reward in enumerate(names)},
    )


def _mean_estimates(terms: np.ndarray, observed: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-reward mean of the observed rows of [K, G] terms (0 elsewhere) and its standard error."""
    mean = terms.sum(axis=1) / np.where(n > 0, n, np.nan)
    return mean, _standard_errors(terms - mean[:, None] * observed, n)


def _standard_errors(centred: np.ndarray, n: np.ndarray) -> np.ndarray:
    """[K] standard error of a mean from centred per-row influence values [K, G] (0 on unobserved rows)."""
    squares = np.einsum("kg,kg->k", centred, centred)  # no [K, G] temporary
    return np.sqrt(squares / np.where(n > 1, n - 1, np.nan) / np.where(n > 0, n, np.nan))


def _snips(w: np.ndarray, rewards: np.ndarray, observed: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Self-normalised IPS of [K, G] masked weights and rewards: sum w r / sum w, delta-method errors."""
    total = w.sum(axis=1)
    value = (w * rewards).sum(axis=1) / np.where(total > 0, total, np.nan)
    influence = w * (rewards - value[:, None]) / (total / np.maximum(n, 1))[:, None]  # 0 where w is 0
    return value, _standard_errors(influence, n)


def snips(weight: np.ndarray, reward: np.ndarray) -> Estimate:
    """Self-normalised IPS of one reward: sum w r / sum w, with the delta-method standard error."""
    observed = np.ones((1, weight.size))
    value, se = _snips(weight[None, :], reward[None, :], observed, observed.sum(axis=1))
    return Estimate(float(value[0]), float(se[0]))


def effective_sample_size(weight: np.ndarray) -> float:
    """(sum w)^2 / sum w^2: the number of on-policy rows the weighted sample is worth."""
    squares = float((weight**2).sum())
    return float(weight.sum() ** 2 / squares) if squares > 0 else 0.0
