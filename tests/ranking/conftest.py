"""A synthetic logged bandit problem with known truth, shared by the ranking tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from mtr.ranking.groups import NONE_CODE, CandidateGroups
from mtr.ranking.ope import LoggedFeedback
from mtr.ranking.policy import PolicyDecision


@dataclass
class SyntheticLog:
    """G opportunities with 1..6 send candidates each, a softmax logging policy and Bernoulli rewards."""

    groups: CandidateGroups
    truth: np.ndarray  # [N, K] true reward probabilities
    logging: np.ndarray  # [N] logging policy's probabilities
    feedback: LoggedFeedback

    def true_value(self, target: PolicyDecision) -> np.ndarray:
        """[K] the target policy's exact mean reward per opportunity."""
        return target.expectation(self.truth).mean(axis=0)


def synthetic_log(n_groups: int = 4000, n_rewards: int = 2, seed: int = 0) -> SyntheticLog:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 8, n_groups)
    channel = rng.integers(0, NONE_CODE, sizes.sum()).astype(np.int8)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    channel[offsets[:-1]] = NONE_CODE
    groups = CandidateGroups.build(sizes, channel, user=np.arange(n_groups) % 100, day=np.arange(n_groups) // 100)
    truth = rng.uniform(0.05, 0.6, (groups.n_candidates, n_rewards))
    exp = np.exp(rng.normal(0, 1, groups.n_candidates))
    logging = exp / groups.group_sum(exp)[groups.group_of]
    # Inverse-CDF sampling of one logged action per group.
    cumulative = np.cumsum(logging) - np.repeat(np.cumsum(groups.group_sum(logging)) - groups.group_sum(logging), sizes)
    u = rng.random(n_groups)
    below = cumulative < u[groups.group_of]
    logged = groups.starts + np.minimum(groups.group_sum(below.astype(np.int64)), sizes - 1)
    rewards = (rng.random((n_groups, n_rewards)) < truth[logged]).astype(np.float64)
    feedback = LoggedFeedback(
        groups,
        logged,
        logging[logged],
        rewards,
        np.ones((n_groups, n_rewards), dtype=bool),
        truth.copy(),
        tuple(f"reward_{k}" for k in range(n_rewards)),
    )
    return SyntheticLog(groups, truth, logging, feedback)


@pytest.fixture(scope="session")
def bandit() -> SyntheticLog:
    return synthetic_log()


@pytest.fixture(scope="session")
def make_bandit() -> Callable[..., SyntheticLog]:
    """`make_bandit(n_groups=..., n_rewards=..., seed=...)` builds another synthetic log."""
    return synthetic_log
