"""The logging policy: a softmax over a heuristic score of observed features, mixed with exploration.

For one decision with eligible send actions A (and "none", always eligible):
    pi = (1 - exploration) * greedy + exploration * uniform(eligible incl. none),
where greedy sends nothing with probability sigmoid(logit(none_share) + 0.15 * sends in the last 7
days) and otherwise picks a send action by softmax(score / temperature) over the eligible ones. Every
eligible action has a positive probability whenever exploration > 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtr.sim.catalog import Catalog
from mtr.sim.config import PLATFORMS, WorldConfig
from mtr.sim.history import SendHistory, eligible_mask, sends_before_day
from mtr.sim.population import Population

# Heuristic preferences a marketing team would write down, from observed features only.
PLAN_TYPE = np.array([[0.6, 0.2, 0.0, 0.0], [1.0, 0.0, 0.4, 0.0], [-0.5, 0.4, 0.0, 0.3]])  # [plan, message type]
PLATFORM_CHANNEL = np.array([[0.4, 0.0, 0.2], [0.3, 0.0, 0.2], [0.0, 0.3, 0.3]])  # [platform, channel]
AGE_HOUR_CENTRE = np.array([20.0, 19.0, 18.0, 12.0, 9.0])  # the hour the team believes each age bucket likes
RECENT_NONE_WEIGHT = 0.15  # recently messaged users are sent nothing more often


def heuristic_scores(
    users: Population, rows: np.ndarray, catalog: Catalog, message: np.ndarray, channel: np.ndarray, hour: np.ndarray
) -> np.ndarray:
    """[N, A] score of each send action (message, channel, hour [A]) for users `rows` [N]."""
    plan, platform, age = users.plan[rows], users.platform[rows], users.age[rows]
    distance = np.abs(hour[None, :] - AGE_HOUR_CENTRE[age][:, None])
    hour_score = -0.5 * (np.minimum(distance, 24 - distance) / 6.0) ** 2
    return (
        PLAN_TYPE[plan][:, catalog.message_type[message]]
        + PLATFORM_CHANNEL[platform][:, channel]
        + hour_score
        + 0.3 * catalog.has_discount[message][None, :]
    )


def action_probabilities(
    world: WorldConfig, scores: np.ndarray, eligible: np.ndarray, recent: np.ndarray
) -> np.ndarray:
    """The policy's distribution over [none, send actions].

    Args:
        scores: [N, A] heuristic scores of the send actions.
        eligible: [N, A] bool, which send actions each user can receive.
        recent: [N] sends to the user in the 7 days before the decision.

    Returns:
        [N, 1 + A] probabilities, column 0 = send nothing; 0 exactly on ineligible actions.
    """
    logits = np.where(eligible, scores / world.policy_temperature, -np.inf)
    top = logits.max(1, keepdims=True)
    weights = np.where(eligible, np.exp(logits - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = weights.sum(1, keepdims=True)
    any_send = total[:, 0] > 0
    none_logit = np.log(world.none_share / (1 - world.none_share)) + RECENT_NONE_WEIGHT * recent
    p_none = np.where(any_send, 1.0 / (1.0 + np.exp(-none_logit)), 1.0)
    greedy = np.concatenate([p_none[:, None], (1 - p_none[:, None]) * weights / np.where(total > 0, total, 1.0)], 1)
    uniform = np.concatenate([np.ones((len(scores), 1)), eligible], 1)
    uniform /= uniform.sum(1, keepdims=True)
    return (1 - world.exploration) * greedy + world.exploration * uniform


def sample_actions(probabilities: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Inverse-CDF sampling of one column per row: [N, K] probabilities, [N] uniforms -> [N] indices."""
    cumulative = np.cumsum(probabilities, 1)
    threshold = draws[:, None] * cumulative[:, -1:]
    # The first column whose cumulative sum passes the threshold; zero-probability columns never do.
    return np.minimum((cumulative <= threshold).sum(1), probabilities.shape[1] - 1)


@dataclass(frozen=True)
class Decision:
    """The policy's view of one day's decisions for N users.

    Attributes:
        message, channel, hour: [A] the day's send actions (message and channel indices).
        eligible: [N, A] bool.
        probabilities: [N, 1 + A], column 0 = send nothing.
    """

    message: np.ndarray
    channel: np.ndarray
    hour: np.ndarray
    eligible: np.ndarray
    probabilities: np.ndarray


def decide(
    world: WorldConfig,
    users: Population,
    catalog: Catalog,
    history: SendHistory,
    unsubscribe_day: np.ndarray,
    rows: np.ndarray,
    day: int,
) -> Decision:
    """The eligible actions and the policy's probabilities at `day` 00:00 for users `rows` [N].

    Args:
        unsubscribe_day: [U, 3] day each user left each channel (NEVER if not).
    """
    message, channel, hour = catalog.actions(day, world.hours)
    can_push = users.platform[rows] != PLATFORMS.index("web")
    days = np.full(len(rows), day)
    eligible = eligible_mask(history, rows, days, can_push, unsubscribe_day[rows], channel[None, :], hour[None, :])
    scores = heuristic_scores(users, rows, catalog, message, channel, hour)
    recent = sends_before_day(history, day)[rows]
    return Decision(message, channel, hour, eligible, action_probabilities(world, scores, eligible, recent))
