"""Long-term policies at work: a fitted Q's greedy choice, and any choice rule run in the environment for its truth.

`rollout_in_env` lets the logging policy decide until `first_day` (its own draws, so the run is the logged one so
far) and the evaluated rule for `horizon` days from it, on the same users and luck as `collect_journeys` and
`journey_truth`; what each user got is summed from the environment's per-day signals, which are the truth's
expectations for activity and conversions and the draws for opens, sends and opt-outs, as in `journey_truth`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mtr.rl.env import MessagingEnv
from mtr.rl.features import REWARD_SIGNALS
from mtr.rl.fitted_q import FittedQ, supported
from mtr.rl.trajectories import LoggedJourneys
from mtr.sim.config import WorldConfig

# A choice rule: (observation, info, steps left in the horizon including this one) -> [U] candidate columns.
ChoiceRule = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], int], np.ndarray]


def greedy(fitted: FittedQ) -> ChoiceRule:
    """The candidate with the highest Q among each user's allowed ones that the logging policy supports as the fit
    did (`FittedQ.support`; the logging policy's probabilities are the environment's `info`)."""

    @torch.no_grad()
    def choose(observation: dict[str, np.ndarray], info: dict[str, np.ndarray], to_go: int) -> np.ndarray:
        candidates = observation["candidates"][0]  # the day's candidates are the same for every user
        q = fitted.values(observation["state"], candidates, min(to_go, fitted.horizon))
        allowed = supported(observation["mask"].astype(bool), info["logging_probabilities"], fitted.support)
        return np.where(allowed, q, -np.inf).argmax(1)

    return choose


def rollout_in_env(
    n_users: int,
    days: int,
    seed: int,
    world: WorldConfig,
    first_day: int,
    horizon: int,
    choose: ChoiceRule | None,
) -> dict[str, np.ndarray]:
    """[U] per reward signal: what `choose`, deciding the days [first_day, first_day + horizon) after the logging
    policy, brings each user over them (None: the logging policy goes on with its own draws)."""
    env = MessagingEnv(n_users, days, seed, world)
    observation, info = env.reset(seed=seed)
    totals = {name: np.zeros(n_users) for name in REWARD_SIGNALS}
    for day in range(first_day + horizon):
        if day < first_day or choose is None:
            actions = env.logging_actions()
        else:
            actions = choose(observation, info, first_day + horizon - day)
        observation, _, _, _, info = env.step(actions)
        if day >= first_day:
            for name in REWARD_SIGNALS:
                totals[name] += info["reward"][name]
    return totals


def greedy_probabilities(fitted: FittedQ, journeys: LoggedJourneys) -> np.ndarray:
    """[U, H + 1, C] the greedy policy's choices at the journeys' logged states, as one-hot probabilities: what
    fitted-Q evaluation needs to value the learned policy from the same logs."""
    probabilities = np.zeros(journeys.logging.shape)
    users = np.arange(journeys.n_users)
    for step in range(journeys.horizon + 1):
        q = fitted.values(journeys.states[:, step], journeys.candidates[step], max(fitted.horizon - step, 1))
        allowed = supported(journeys.eligible[:, step], journeys.logging[:, step], fitted.support)
        probabilities[users, step, np.where(allowed, q, -np.inf).argmax(1)] = 1.0
    return probabilities
