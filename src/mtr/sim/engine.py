"""The day loop: each day the logging policy decides for every user at once, then sends are drawn.

Only the loop over days is Python; everything within a day is vectorised over users and actions.
Engagement and unsubscribe are drawn in the loop (an unsubscribe removes the channel for the next
days); conversions and activity do not feed back into decisions, so they are drawn afterwards from
the `WorldTruth` of the finished log (`mtr.sim.draws`). `DayLoop` holds the loop's running state, so that a caller
can decide each day from outside (`run_days` drives it with a policy, the environment `mtr.rl.env` with an agent's
actions).
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
from mtr.sim.outcomes import SendOutcomes, Sends, send_outcomes
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


@dataclass(frozen=True)
class DayOutcome:
    """What one day of the loop did.

    Attributes:
        day: the day decided.
        choice: [U] the column of each user's decision taken (0 = send nothing, k = the day's send action k - 1).
        sends: the N sends of the day (with their fatigue counts).
        outcomes: their true rates.
        opened: [N] bool, the send was opened (drawn).
        left: [N] bool, the send made the user leave its channel (drawn).
    """

    day: int
    choice: np.ndarray
    sends: Sends
    outcomes: SendOutcomes
    opened: np.ndarray
    left: np.ndarray


class DayLoop:
    """The running state of the day loop, stepped one day at a time from outside (`run_days`, `mtr.rl.env`).

    Args:
        world: the outcome model (and the logging policy's knobs).
        users, catalog: the population and the catalog, drawn for `days` days.
        days: the days to run.
        rng: draws choices, opens and opt-outs when `common_draws` is None.
        common_draws: a seed of common random numbers (see `run_days`).
        variant, in_variant: the A/B test's policy world and its users (see `run_days`).
    """

    def __init__(
        self,
        world: WorldConfig,
        users: Population,
        catalog: Catalog,
        days: int,
        rng: np.random.Generator | None = None,
        common_draws: int | None = None,
        variant: WorldConfig | None = None,
        in_variant: np.ndarray | None = None,
    ) -> None:
        if rng is None and common_draws is None:
            raise InputError("day loop: pass rng or common_draws, the draws need a source")
        n_users = len(users.user_id)
        self.world, self.users, self.catalog, self.days = world, users, catalog, days
        self.rng, self.common_draws, self.variant, self.in_variant = rng, common_draws, variant, in_variant
        self.day = 0
        self.history = SendHistory.empty(n_users, days)
        self.unsubscribe_day = np.full((n_users, 3), NEVER, dtype=np.int64)
        self.propensity = np.empty((n_users, days))
        self.p_engagement, self.p_unsubscribe = np.full((n_users, days), np.nan), np.full((n_users, days), np.nan)
        self.engaged, self.unsubscribed = np.zeros((n_users, days), bool), np.zeros((n_users, days), bool)
        self.everyone = np.arange(n_users)

    def decide(self) -> Decision:
        """The logging policy's decision of the current day (the variant's for the A/B test's users)."""
        decision = decide(
            self.world, self.users, self.catalog, self.history, self.unsubscribe_day, self.everyone, self.day
        )
        if self.variant is not None and self.in_variant is not None:
            rows = np.nonzero(self.in_variant)[0]
            tested = decide(self.variant, self.users, self.catalog, self.history, self.unsubscribe_day, rows, self.day)
            decision.probabilities[rows] = tested.probabilities
        return decision

    def view(self, decision: Decision) -> DayView:
        """What a policy sees at the current day's decisions."""
        return DayView(self.day, decision, self.world, self.users, self.catalog, self.history, self.unsubscribe_day)

    def common_uniforms(self) -> np.ndarray:
        """[3, U] the day's common random numbers: the choice, open and opt-out draws of each user."""
        if self.common_draws is None:
            raise InputError("day loop: common random numbers need common_draws")
        return np.random.default_rng([self.common_draws, self.day]).random((3, len(self.everyone)))

    def common_choice(self, decision: Decision) -> np.ndarray:
        """[U] the columns `step` would draw from `decision.probabilities` without a choice (common draws only):
        another policy's loop can let the logging policy decide some days exactly as it would have."""
        return sample_actions(decision.probabilities, self.common_uniforms()[0])

    def step(self, decision: Decision, choice: np.ndarray | None = None) -> DayOutcome:
        """Take the day's decisions, draw their opens and opt-outs, and move to the next day.

        Args:
            decision: the day's actions and the probabilities the choices are drawn from (and logged with).
            choice: [U] the columns taken, if decided outside (no choice is drawn then); else drawn from
                `decision.probabilities`.
        """
        day, n_users, rng = self.day, len(self.everyone), self.rng
        if day >= self.days:
            raise InputError(f"day loop: all {self.days} days are run")
        day_draws = None if self.common_draws is None else self.common_uniforms()
        if choice is None:
            choice = sample_actions(decision.probabilities, rng.random(n_users) if day_draws is None else day_draws[0])
        self.propensity[:, day] = decision.probabilities[self.everyone, choice]
        senders = np.nonzero(choice > 0)[0]
        action = choice[senders] - 1
        message, channel, hour = decision.message[action], decision.channel[action], decision.hour[action]
        history = self.history
        recent, recent_channel = recent_send_counts(history, senders, np.full(len(senders), day), hour, channel)
        sends = Sends(senders, message, channel, hour, recent, recent_channel)
        outcomes = send_outcomes(self.world, self.users, self.catalog, sends)
        history.hour[senders, day], history.channel[senders, day], history.message[senders, day] = (
            hour,
            channel,
            message,
        )
        self.p_engagement[senders, day], self.p_unsubscribe[senders, day] = (
            outcomes.p_engagement,
            outcomes.p_unsubscribe,
        )
        opens = rng.random(len(senders)) if day_draws is None else day_draws[1, senders]
        opened = opens < outcomes.p_engagement
        self.engaged[senders, day] = opened
        left = (rng.random(len(senders)) if day_draws is None else day_draws[2, senders]) < outcomes.p_unsubscribe
        self.unsubscribed[senders, day] = left
        self.unsubscribe_day[senders[left], channel[left]] = day
        self.day += 1
        return DayOutcome(day, choice, sends, outcomes, opened, left)

    def finish(self, start_us: int) -> SimulatedLog:
        """The log of the finished run, its truth checked against the rates the outcomes were drawn from."""
        if self.day != self.days:
            raise InputError(f"day loop: {self.day} of {self.days} days are run; a log needs all of them")
        history = self.history
        truth = WorldTruth(self.world, self.users, self.catalog, history)
        sent = history.sent
        # The truth must be what the outcomes were drawn from: the oracle relies on this one code path.
        if not (
            np.array_equal(truth.logged.p_engagement, self.p_engagement[sent])
            and np.array_equal(truth.logged.p_unsubscribe, self.p_unsubscribe[sent])
        ):
            raise RuntimeError("simulator bug: recomputed send probabilities differ from the ones drawn from")
        return SimulatedLog(
            self.world,
            start_us,
            self.users,
            self.catalog,
            history,
            self.propensity,
            self.engaged,
            self.unsubscribed,
            truth,
        )


def draw_world(
    rng: np.random.Generator, n_users: int, days: int, world: WorldConfig
) -> tuple[int, Population, Catalog]:
    """The first opportunity day (epoch microseconds), the users and the catalog of a run: the same ones for
    `run_days` and for an environment built with the same `rng` seed."""
    start_us = start_of(world)
    users = make_population(rng, n_users, world, start_us - PRE_PERIOD_DAYS * DAY_US)
    return start_us, users, make_catalog(rng, world, days)


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
    start_us, users, catalog = draw_world(rng, n_users, days, world)
    loop = DayLoop(world, users, catalog, days, rng, common_draws, variant, in_variant)
    for day in range(days):
        decision = loop.decide()
        if policy is not None:
            chosen = policy(loop.view(decision))
            if chosen.shape != decision.probabilities.shape or np.any((chosen[:, 1:] > 0) & ~decision.eligible):
                raise InputError(f"policy: day {day}: probabilities must be [users, 1 + actions], 0 on ineligible ones")
            decision = Decision(decision.message, decision.channel, decision.hour, decision.eligible, chosen)
        loop.step(decision)
    return loop.finish(start_us)
