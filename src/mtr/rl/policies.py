"""Long-term policies at work: the learned policy of a fitted Q, and any policy run in the environment for its truth.

`rollout_in_env` lets the logging policy decide until `first_day` (its own draws, so the run is the logged one so
far) and the evaluated policy for `horizon` days from it, on the same users and luck as `collect_journeys` and
`journey_truth`; what each user got is summed from the environment's per-day signals, which are the truth's
expectations for activity and conversions and the draws for opens, sends and opt-outs, as in `journey_truth`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mtr.rl.env import MessagingEnv
from mtr.rl.features import REWARD_SIGNALS
from mtr.rl.fitted_q import FittedQ, gated_probabilities
from mtr.rl.trajectories import LoggedJourneys, reachable_at_end
from mtr.sim.config import WorldConfig

# A policy in the environment: (observation, info, steps left in the horizon including this one) -> [U, C]
# probabilities over the observation's candidates (0 on masked ones).
PolicyRule = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], int], np.ndarray]


def learned(fitted: FittedQ) -> PolicyRule:
    """The learned policy (`send_gate`): send nothing where the fitted Q says it beats the logging policy's average
    send, else send as the logging policy would (the logging policy's probabilities are the environment's info)."""

    @torch.no_grad()
    def decide(observation: dict[str, np.ndarray], info: dict[str, np.ndarray], to_go: int) -> np.ndarray:
        candidates = observation["candidates"][0]  # the day's candidates are the same for every user
        q = fitted.values(observation["state"], candidates, min(to_go, fitted.horizon))
        return gated_probabilities(q, observation["mask"].astype(bool), info["logging_probabilities"])

    return decide


def rollout_in_env(
    n_users: int,
    days: int,
    seed: int,
    world: WorldConfig,
    first_day: int,
    horizon: int,
    policy: PolicyRule | None,
) -> dict[str, np.ndarray]:
    """[U] per reward signal: what `policy`, deciding the days [first_day, first_day + horizon) after the logging
    policy, brings each user over them (None: the logging policy goes on), and whether the user is still
    reachable on each channel after them (`reachable_push`, ...), as `journey_truth`. Choices are drawn with the world's
    common random numbers, as the logging policy's are."""
    env = MessagingEnv(n_users, days, seed, world)
    observation, info = env.reset(seed=seed)
    totals = {name: np.zeros(n_users) for name in REWARD_SIGNALS}
    for day in range(first_day + horizon):
        if day < first_day or policy is None:
            actions = env.common_actions()
        else:
            actions = env.common_actions(policy(observation, info, first_day + horizon - day))
        observation, _, _, _, info = env.step(actions)
        if day >= first_day:
            for name in REWARD_SIGNALS:
                totals[name] += info["reward"][name]
    return {**totals, **reachable_at_end(env.users, env.loop.unsubscribe_day, first_day + horizon)}


def learned_probabilities(fitted: FittedQ, journeys: LoggedJourneys) -> np.ndarray:
    """[U, H + 1, C] the learned policy's probabilities at the journeys' logged states: what fitted-Q evaluation
    needs to value it from the same logs."""
    return np.stack(
        [
            gated_probabilities(
                fitted.values(journeys.states[:, step], journeys.candidates[step], max(fitted.horizon - step, 1)),
                journeys.eligible[:, step],
                journeys.logging[:, step],
            )
            for step in range(journeys.horizon + 1)
        ],
        axis=1,
    )
