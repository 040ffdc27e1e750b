"""Whole-policy truth by simulation: the same users, the same luck, another policy, and what it does over months.

The oracle's counterfactual (`mtr.sim.oracle`) changes one decision and holds the rest of the log fixed: right for
off-policy estimates of one step, blind to what a policy does to the weariness of every later day. Here a policy
decides every day of a simulated world instead of the logging policy (`run_days(policy=...)`), with common random
numbers (each day's draws one uniform per user from a stream of (seed, day)), so two policies meet the same
users, catalog and luck and differ by their decisions alone. The outcomes are the truth's expectations where the
world has them (active days), and the draws' where it decides (opens, opt-outs, reachability).

Policies here are the simulator's own (they see the world's state, never a model): the logging policy under other
knobs, "send nothing", and the myopic one that sends each user the action with the highest true open probability.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mtr.errors import InputError
from mtr.sim.config import LONG_TERM_DAYS, PLATFORMS, PRE_PERIOD_DAYS, WorldConfig
from mtr.sim.engine import DayView, Policy, SimulatedLog, run_days
from mtr.sim.history import recent_send_counts
from mtr.sim.logging_policy import decide
from mtr.sim.outcomes import Sends, expected_active_days, lift_overlap, send_outcomes, sigmoid

ACTIVITY_STREAM = 10**9  # the common-random-number stream of drawn activity: beyond any day of the (seed, day) draws
CONVERSION_STREAM = ACTIVITY_STREAM + 1  # and of drawn conversions


def logging_policy(**knobs: float) -> Policy:
    """The simulator's logging policy under other knobs (none_share, exploration, policy_temperature)."""

    def decide_with_knobs(view: DayView) -> np.ndarray:
        if not knobs:
            return view.decision.probabilities
        everyone = np.arange(len(view.users.user_id))
        variant = replace(view.world, **knobs)
        return decide(
            variant, view.users, view.catalog, view.history, view.unsubscribe_day, everyone, view.day
        ).probabilities

    return decide_with_knobs


def randomised_intensity(none_shares: tuple[float, ...]) -> Policy:
    """A historical experiment in how much to send: user i is decided by the logging policy with
    `none_shares[i % len(none_shares)]`, so the population spans light to heavy senders (what a surrogate index
    needs to learn from, `mtr.ope.surrogate`)."""

    def decide_by_arm(view: DayView) -> np.ndarray:
        arm = np.arange(len(view.users.user_id)) % len(none_shares)
        probabilities = np.empty_like(view.decision.probabilities)
        for index, share in enumerate(none_shares):
            rows = np.nonzero(arm == index)[0]
            variant = replace(view.world, none_share=share)
            chosen = decide(variant, view.users, view.catalog, view.history, view.unsubscribe_day, rows, view.day)
            probabilities[rows] = chosen.probabilities
        return probabilities

    return decide_by_arm


def send_nothing(view: DayView) -> np.ndarray:
    """Never send."""
    probabilities = np.zeros_like(view.decision.probabilities)
    probabilities[:, 0] = 1.0
    return probabilities


def most_engaging(view: DayView) -> np.ndarray:
    """The myopic policy: every user gets the eligible action with the highest true open probability (fatigue
    included), every day; nothing only when no action is eligible."""
    d, n_users = view.decision, len(view.users.user_id)
    user, action = np.nonzero(d.eligible)
    day = np.full(len(user), view.day)
    recent, recent_channel = recent_send_counts(view.history, user, day, d.hour[action], d.channel[action])
    sends = Sends(user, d.message[action], d.channel[action], d.hour[action], recent, recent_channel)
    p_open = np.full(d.eligible.shape, -1.0)
    p_open[user, action] = send_outcomes(view.world, view.users, view.catalog, sends).p_engagement
    probabilities = np.zeros_like(d.probabilities)
    best = p_open.argmax(1)
    has_action = d.eligible.any(1)
    probabilities[np.arange(n_users), np.where(has_action, best + 1, 0)] = 1.0
    return probabilities


@dataclass(frozen=True)
class PolicyOutcomes:
    """What a policy did to each user of a world ([U] arrays, for means and paired differences).

    Attributes:
        per_user_active_days: expected active days in the last `LONG_TERM_DAYS` days of the run.
        per_user_conversions: expected conversions in the same last 8 weeks.
        per_user_sends: sends over the run.
        per_user_opens: opens over the run (drawn).
        per_user_unsubscribes: opt-outs over the run (drawn).
        reachable: [3] share of users still reachable on push, email, in-app at the end.
    """

    per_user_active_days: np.ndarray
    per_user_conversions: np.ndarray
    per_user_sends: np.ndarray
    per_user_opens: np.ndarray
    per_user_unsubscribes: np.ndarray
    reachable: np.ndarray


def drawn_activity(log: SimulatedLog, seed: int) -> np.ndarray:
    """[U, days] whether each user was active on each day of the run, drawn with common random numbers (one
    uniform per user and day from a stream of (seed, "activity")): what a platform observes of the truth."""
    days = log.history.sent.shape[1]
    logits = log.truth.activity_base[:, None] + log.truth.offsets[:, PRE_PERIOD_DAYS : PRE_PERIOD_DAYS + days]
    uniforms = np.random.default_rng([seed, ACTIVITY_STREAM]).random(logits.shape)
    return uniforms < sigmoid(logits)


def drawn_conversions(log: SimulatedLog, seed: int) -> np.ndarray:
    """[U, days] each user's conversions on each day of the run, drawn from the truth's expected count of the day
    with common random numbers (one uniform per user and day from a stream of (seed, "conversions"), inverted
    through the Poisson distribution's CDF)."""
    days = log.history.sent.shape[1]
    expected = np.stack([expected_conversions(log, day, day + 1) for day in range(days)], axis=1)
    uniforms = np.random.default_rng([seed, CONVERSION_STREAM]).random(expected.shape)
    return poisson_quantile(expected, uniforms)


def poisson_quantile(rate: np.ndarray, uniforms: np.ndarray, most: int = 8) -> np.ndarray:
    """The Poisson(rate) count whose CDF first passes each uniform (counts above `most` are cut to it): one uniform
    per draw, so two rates met with the same uniforms give ordered counts (common random numbers)."""
    count = np.zeros(rate.shape, dtype=np.int64)
    term = np.exp(-rate)
    cumulative = term.copy()
    for k in range(1, most + 1):
        passed = uniforms >= cumulative
        count += passed
        term = term * rate / k
        cumulative = cumulative + term
    return count


def short_term_signals(log: SimulatedLog, seed: int, days: int) -> dict[str, np.ndarray]:
    """What a platform sees of each user in the first `days` days of a run, and before it: drawn active days,
    opens, sends and opt-outs, and the user's activity logit without messages (the pre-period's baseline)."""
    return {
        "active_days": drawn_activity(log, seed)[:, :days].sum(1).astype(np.float64),
        "opens": log.engaged[:, :days].sum(1).astype(np.float64),
        "sends": log.history.sent[:, :days].sum(1).astype(np.float64),
        "unsubscribes": log.unsubscribed[:, :days].sum(1).astype(np.float64),
        "baseline": log.truth.activity_base,
    }


def active_days_from_start(log: SimulatedLog, days: int = LONG_TERM_DAYS) -> np.ndarray:
    """[U] each user's expected active days in days 1 .. `days` of the run (the truth's expectation)."""
    return expected_active_days_between(log, 1, 1 + days)


def expected_active_days_between(log: SimulatedLog, first: int, last: int) -> np.ndarray:
    """[U] each user's expected active days in days [first, last) of the run."""
    window = log.truth.offsets[:, PRE_PERIOD_DAYS + first : PRE_PERIOD_DAYS + last]
    return expected_active_days(log.truth.activity_base, window, np.zeros_like(window))


def expected_conversions(log: SimulatedLog, first: float, last: float) -> np.ndarray:
    """[U] each user's expected conversions in days [first, last) of the run: the organic rate over the window,
    plus each send's lift from its send until the next send or 7 days (`mtr.sim.outcomes`), where that overlaps
    the window."""
    truth = log.truth
    start = np.nan_to_num(log.history.send_time(), nan=np.inf)
    overlap = np.where(log.history.sent, lift_overlap(start, truth.next_send, first, last), 0.0)
    return truth.organic * (last - first) + (truth.lift * overlap).sum(1)


def roll_out(
    policy: Policy, n_users: int, days: int, seed: int, world: WorldConfig
) -> tuple[SimulatedLog, PolicyOutcomes]:
    """Run `policy` on the world of `seed` (its users and catalog) for `days` days with common random numbers."""
    if days < LONG_TERM_DAYS:
        raise InputError(f"days: a rollout needs at least {LONG_TERM_DAYS} days to measure 8 weeks, got {days}")
    log = run_days(np.random.default_rng(seed), n_users, days, world, policy=policy, common_draws=seed)
    can_push = log.users.platform != PLATFORMS.index("web")
    kept = [~(log.unsubscribed & (log.history.channel == channel)).any(1) for channel in range(3)]
    reachable = np.array([np.mean(can_push & kept[0]), np.mean(kept[1]), np.mean(kept[2])])
    return log, PolicyOutcomes(
        expected_active_days_between(log, days - LONG_TERM_DAYS, days),
        expected_conversions(log, days - LONG_TERM_DAYS, days),
        log.history.sent.sum(1).astype(np.float64),
        log.engaged.sum(1).astype(np.float64),
        log.unsubscribed.sum(1).astype(np.float64),
        reachable,
    )
