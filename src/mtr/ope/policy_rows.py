"""A target policy's per-row inputs of the estimators, gathered once per policy (`mtr.ope.estimators`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtr.ope.logged_feedback import LoggedFeedback
from mtr.scoring.policy import PolicyDecision


@dataclass(frozen=True)
class PolicyRows:
    """A target policy's per-row inputs of the estimators, reward-major [K, G] (0 where a reward is missing).

    Attributes:
        weight: importance weights w_i.
        rewards: observed rewards.
        observed: 1.0 where the reward is observed.
        n: [K] observed rows per reward.
        bounded: [K] True for binary rewards, whose estimates stay in [0, 1].
        residual: r - rhat(logged action), or None without a reward model.
        direct: sum_a pi(a) rhat(a), the direct method's term, or None without a reward model.
        user: [G] the user of each opportunity: one user's rewards are correlated (a user's outcome
            windows overlap from one daily decision to the next), so standard errors sum per user.
    """

    weight: np.ndarray
    rewards: np.ndarray
    observed: np.ndarray
    n: np.ndarray
    bounded: np.ndarray
    residual: np.ndarray | None
    direct: np.ndarray | None
    user: np.ndarray | None = None

    @classmethod
    def of(cls, feedback: LoggedFeedback, target: PolicyDecision) -> PolicyRows:
        weight = target.probability_of(feedback.logged_index) / feedback.propensity  # [G]
        # Reward-major [K, G] arrays, so that every per-reward sum runs over contiguous memory.
        observed, rewards = feedback.by_reward
        residual = direct = None
        if feedback.predicted is not None:
            residual = rewards - feedback.logged_prediction
            direct = np.ascontiguousarray(target.expectation(feedback.predicted).T)  # [K, G]
        n = observed.sum(axis=1)
        user = feedback.groups.user
        return cls(weight * observed, rewards, observed, n, feedback.bounded, residual, direct, user)
