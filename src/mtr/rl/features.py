"""What a long-term policy sees of a user and of a candidate send, as numbers.

One home for the state and action features of the environment (`mtr.rl.env`), of logged trajectories
(`mtr.rl.trajectories`) and of the Q-networks that score candidates (`mtr.rl.fitted_q`). The state holds only what
a platform observes before the day's decision: the user's attributes, its sends, opens and active days of the
last 7 and 28 days, its sends weighted by a 3-week half-life (how weariness is known to fade), the days since the
last send, and on which channels it can still be reached. Candidates are described by their channel, hour and
template, so that a Q-network scores any day's set of actions, "send nothing" included.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mtr.errors import InputError
from mtr.schema import CHANNELS
from mtr.sim.catalog import Catalog
from mtr.sim.config import AGE_BUCKETS, COUNTRIES, MESSAGE_TYPES, PLANS, PLATFORMS, TOPICS
from mtr.sim.history import NEVER
from mtr.sim.logging_policy import Decision
from mtr.sim.outcomes import weariness_weights
from mtr.sim.population import Population

RECENT_WINDOWS = (7, 28)  # days of the recent-behaviour counts
DAYS_SINCE_CAP = 28  # "days since the last send" saturates here (and for users never sent)


def state_names() -> tuple[str, ...]:
    """The names of `user_state`'s columns, in order."""
    attributes = [
        f"{field}={value}"
        for field, values in (("country", COUNTRIES), ("platform", PLATFORMS), ("plan", PLANS), ("age", AGE_BUCKETS))
        for value in values
    ]
    recent = [f"{what}_{days}d" for what in ("sends", "opens", "active_days") for days in RECENT_WINDOWS]
    return (*attributes, *recent, "sends_3w_half_life", "days_since_send", *(f"reachable_{c}" for c in CHANNELS))


def user_state(
    users: Population,
    sent: np.ndarray,
    engaged: np.ndarray,
    active: np.ndarray,
    unsubscribe_day: np.ndarray,
    day: int,
) -> np.ndarray:
    """[U, len(state_names())] float32 state of every user at `day` 00:00, before the day's decision.

    Args:
        users: the population (observed attributes only are read).
        sent, engaged, active: [U, >= day] bool per user and day; only columns before `day` are read.
        unsubscribe_day: [U, 3] the day each channel was left (NEVER if not); a channel left before `day` is gone.
        day: the decision's day.
    """
    attributes = [
        np.eye(len(vocabulary), dtype=np.float32)[codes]
        for codes, vocabulary in (
            (users.country, COUNTRIES),
            (users.platform, PLATFORMS),
            (users.plan, PLANS),
            (users.age, AGE_BUCKETS),
        )
    ]
    recent = [
        past[:, max(day - days, 0) : day].sum(1, keepdims=True, dtype=np.float32) / days
        for past in (sent, engaged, active)
        for days in RECENT_WINDOWS
    ]
    lags = day - np.arange(day)  # 1 for yesterday's sends
    decayed = (sent[:, :day] * weariness_weights(lags)).sum(1, keepdims=True) / 10.0
    past = sent[:, : max(day, 1)]  # day 0 has no past: one column keeps argmax defined, `any` masks it out
    last = np.where(sent[:, :day].any(1), day - 1 - np.argmax(past[:, ::-1], axis=1), -NEVER)
    since = np.minimum(day - last, DAYS_SINCE_CAP)[:, None] / DAYS_SINCE_CAP
    return np.concatenate(
        [*attributes, *recent, decayed, since, reachable(users, unsubscribe_day, day)], axis=1
    ).astype(np.float32)


def reachable(users: Population, unsubscribe_day: np.ndarray, day: int) -> np.ndarray:
    """[U, 3] whether each user can still be reached on push, email and in-app at `day` 00:00: it has not left
    the channel before, and push needs an app (not the web platform)."""
    reach = unsubscribe_day >= day
    reach[:, 0] &= users.platform != PLATFORMS.index("web")
    return reach


def action_names(hours: tuple[int, ...]) -> tuple[str, ...]:
    """The names of `action_features`' columns, in order."""
    return (
        "is_send",
        *(f"channel={c}" for c in CHANNELS),
        *(f"hour={h}" for h in hours),
        *(f"type={t}" for t in MESSAGE_TYPES),
        *(f"topic={t}" for t in TOPICS),
        "has_discount",
    )


def action_features(
    message_type: np.ndarray,
    topic: np.ndarray,
    has_discount: np.ndarray,
    channel: np.ndarray,
    hour: np.ndarray,
    hours: tuple[int, ...],
) -> np.ndarray:
    """[1 + A, len(action_names(hours))] float32: row 0 "send nothing" (all zeros), then the A send actions.

    Args:
        message_type, topic, has_discount: [A] the template of each send action (codes, bool).
        channel: [A] channel codes; hour: [A] hours, each one of `hours`.
        hours: the world's send hours (the one-hot's vocabulary).
    """
    n = len(channel)
    hour_index = np.searchsorted(np.asarray(hours), hour)
    if n and not np.array_equal(np.asarray(hours)[np.minimum(hour_index, len(hours) - 1)], hour):
        raise ValueError(f"action features: hours {sorted(set(hour.tolist()))} are not all in {list(hours)}")
    sends = np.concatenate(
        [
            np.ones((n, 1), np.float32),
            np.eye(len(CHANNELS), dtype=np.float32)[channel],
            np.eye(len(hours), dtype=np.float32)[hour_index],
            np.eye(len(MESSAGE_TYPES), dtype=np.float32)[message_type],
            np.eye(len(TOPICS), dtype=np.float32)[topic],
            has_discount.astype(np.float32)[:, None],
        ],
        axis=1,
    )
    return np.concatenate([np.zeros((1, sends.shape[1]), np.float32), sends])


def decision_features(catalog: Catalog, decision: Decision, hours: tuple[int, ...]) -> np.ndarray:
    """[1 + A, F] `action_features` of a day's decision: "send nothing", then its send actions."""
    message = decision.message
    return action_features(
        catalog.message_type[message],
        catalog.topic[message],
        catalog.has_discount[message],
        decision.channel,
        decision.hour,
        hours,
    )


# The per-step signals a reward can weigh, in the environment and in logged journeys.
REWARD_SIGNALS = ("active", "opens", "conversions", "sends", "unsubscribes")


def check_reward_weights(reward_weights: Mapping[str, float]) -> dict[str, float]:
    """The weights as a dict, each name one of `REWARD_SIGNALS` and each weight finite."""
    weights = dict(reward_weights)
    for name, weight in weights.items():
        if name not in REWARD_SIGNALS:
            raise InputError(f"reward_weights: unknown signal {name!r}; known signals: {', '.join(REWARD_SIGNALS)}")
        if not isinstance(weight, int | float) or not np.isfinite(weight):
            raise InputError(f"reward_weights: the weight of {name!r} must be a finite number, got {weight!r}")
    return {name: float(weight) for name, weight in weights.items()}


def weighted_reward(signals: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """The reward: the weighted sum of named signals (arrays of one shape), each weight checked."""
    checked = check_reward_weights(weights)
    missing = sorted(set(checked) - set(signals))
    if missing:
        raise InputError(f"reward: signals {missing} are not among {sorted(signals)}")
    shape = np.shape(next(iter(signals.values())))
    return sum((weight * np.asarray(signals[name]) for name, weight in checked.items()), np.zeros(shape))
