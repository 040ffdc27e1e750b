"""The day loop: each day the logging policy decides for every user at once, then sends are drawn.

Only the loop over days is Python; everything within a day is vectorised over users and actions.
Engagement and unsubscribe are drawn in the loop (an unsubscribe removes the channel for the next
days); conversions and activity do not feed back into decisions, so they are drawn afterwards from
the `WorldTruth` of the finished log (`mtr.sim.draws`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from mtr.errors import InputError
from mtr.sim.catalog import Catalog, make_catalog
from mtr.sim.config import PRE_PERIOD_DAYS, WorldConfig
from mtr.sim.history import NEVER, SendHistory, recent_send_counts
from mtr.sim.logging_policy import Decision, decide, sample_actions
from mtr.sim.outcomes import Sends, send_outcomes
from mtr.sim.population import DAY_US, Population, make_population
from mtr.sim.truth import WorldTruth


@dataclass(frozen=True)
class SimulatedLog:
    """A simulated world and what happened in it.

    Attributes:
        world: the config.
        start_us: first opportunity day 00:00 UTC, epoch microseconds.
        users: the population.
        catalog: the message catalog.
        history: the logged actions [U, D].
        propensity: [U, D] the logging policy's probability of each logged action.
        engaged: [U, D] bool, the send was opened.
        unsubscribed: [U, D] bool, the send made the user leave its channel.
        truth: the outcome model bound to this log.
    """

    world: WorldConfig
    start_us: int
    users: Population
    catalog: Catalog
    history: SendHistory
    propensity: np.ndarray
    engaged: np.ndarray
    unsubscribed: np.ndarray
    truth: WorldTruth

    @property
    def log_start_us(self) -> int:
        return self.start_us - PRE_PERIOD_DAYS * DAY_US

    @property
    def log_end_us(self) -> int:
        return self.start_us + int(self.truth.log_end) * DAY_US


@dataclass(frozen=True)
class DayView:
    """What a policy sees at one day's decisions: the day's actions and eligibility (`decision`, whose
    probabilities are the logging policy's), and the world so far (sends of earlier days in `history`, the day
    each user left each channel in `unsubscribe_day`, NEVER if not)."""

    day: int
    decision: Decision
    world: WorldConfig
    users: Population
    catalog: Catalog
    history: SendHistory
    unsubscribe_day: np.ndarray


# A policy: the day's view -> [U, 1 + A] probabilities over (send nothing, the day's send actions), 0 on ineligible.
Policy = Callable[[DayView], np.ndarray]


def start_of(world: WorldConfig) -> int:
    """The first opportunity day 00:00 UTC in epoch microseconds."""
    return int(datetime.fromisoformat(world.start_date).replace(tzinfo=UTC).timestamp()) * 1_000_000


def run_days(
    rng: np.random.Generator,
    n_users: int,
    days: int,
    world: WorldConfig,
    variant: WorldConfig | None = None,
    in_variant: np.ndarray | None = None,
    policy: Policy | None = None,
    common_draws: int | None = None,
) -> SimulatedLog:
    """Draw users and catalog, then run the policy and the send outcomes day by day.

    For an online A/B test, the users where `in_variant` [n_users] is True are decided by the policy
    of `variant` (a world differing only in its policy knobs); the outcome model stays `world`'s.

    Args:
        policy: decides instead of the logging policy (`mtr.sim.rollout`); the logged propensities are its own.
        common_draws: a seed of common random numbers: each day's choice, open and opt-out draws are one uniform
            per user from a stream of (seed, day), whatever the policy sends, so that two policies run on the
            same users meet the same luck (without it, draws follow the sends, as in every logged world).
    """
    start_us = start_of(world)
    users = make_population(rng, n_users, world, start_us - PRE_PERIOD_DAYS * DAY_US)
    catalog = make_catalog(rng, world, days)
    history = SendHistory.empty(n_users, days)
    unsubscribe_day = np.full((n_users, 3), NEVER, dtype=np.int64)
    propensity = np.empty((n_users, days))
    p_engagement, p_unsubscribe = np.full((n_users, days), np.nan), np.full((n_users, days), np.nan)
    engaged, unsubscribed = np.zeros((n_users, days), bool), np.zeros((n_users, days), bool)
    everyone = np.arange(n_users)
    for day in range(days):
        decision = decide(world, users, catalog, history, unsubscribe_day, everyone, day)
        if variant is not None and in_variant is not None:
            rows = np.nonzero(in_variant)[0]
            tested = decide(variant, users, catalog, history, unsubscribe_day, rows, day)
            decision.probabilities[rows] = tested.probabilities
        if policy is not None:
            chosen = policy(DayView(day, decision, world, users, catalog, history, unsubscribe_day))
            if chosen.shape != decision.probabilities.shape or np.any((chosen[:, 1:] > 0) & ~decision.eligible):
                raise InputError(f"policy: day {day}: probabilities must be [users, 1 + actions], 0 on ineligible ones")
            decision = Decision(decision.message, decision.channel, decision.hour, decision.eligible, chosen)
        day_draws = None if common_draws is None else np.random.default_rng([common_draws, day]).random((3, n_users))
        choice = sample_actions(decision.probabilities, rng.random(n_users) if day_draws is None else day_draws[0])
        propensity[:, day] = decision.probabilities[everyone, choice]
        senders = np.nonzero(choice > 0)[0]
        action = choice[senders] - 1
        message, channel, hour = decision.message[action], decision.channel[action], decision.hour[action]
        recent, recent_channel = recent_send_counts(history, senders, np.full(len(senders), day), hour, channel)
        outcomes = send_outcomes(world, users, catalog, Sends(senders, message, channel, hour, recent, recent_channel))
        history.hour[senders, day], history.channel[senders, day], history.message[senders, day] = (
            hour,
            channel,
            message,
        )
        p_engagement[senders, day], p_unsubscribe[senders, day] = outcomes.p_engagement, outcomes.p_unsubscribe
        opens = rng.random(len(senders)) if day_draws is None else day_draws[1, senders]
        engaged[senders, day] = opens < outcomes.p_engagement
        left = (rng.random(len(senders)) if day_draws is None else day_draws[2, senders]) < outcomes.p_unsubscribe
        unsubscribed[senders, day] = left
        unsubscribe_day[senders[left], channel[left]] = day
    truth = WorldTruth(world, users, catalog, history)
    sent = history.sent
    # The truth must be what the outcomes were drawn from: the oracle relies on this one code path.
    if not (
        np.array_equal(truth.logged.p_engagement, p_engagement[sent])
        and np.array_equal(truth.logged.p_unsubscribe, p_unsubscribe[sent])
    ):
        raise RuntimeError("simulator bug: recomputed send probabilities differ from the ones drawn from")
    return SimulatedLog(world, start_us, users, catalog, history, propensity, engaged, unsubscribed, truth)
