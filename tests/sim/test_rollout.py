"""Whole-policy truth: policies run on the same users with the same luck, and what they do over months."""

from __future__ import annotations

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.sim.config import WorldConfig
from mtr.sim.engine import DayView, run_days
from mtr.sim.rollout import logging_policy, most_engaging, roll_out, send_nothing

USERS, DAYS, SEED = 400, 84, 3
WORN = WorldConfig(long_term_strength=1.0)


def test_common_random_numbers_give_the_same_world_and_luck_to_every_policy() -> None:
    first, again = (roll_out(logging_policy(), USERS, DAYS, SEED, WORN)[1] for _ in range(2))
    np.testing.assert_array_equal(first.per_user_active_days, again.per_user_active_days)

    def first_half_never(view: DayView) -> np.ndarray:
        probabilities = view.decision.probabilities.copy()
        probabilities[: USERS // 2] = 0.0
        probabilities[: USERS // 2, 0] = 1.0
        return probabilities

    log, _ = roll_out(logging_policy(), USERS, DAYS, SEED, WORN)
    half_log, _ = roll_out(first_half_never, USERS, DAYS, SEED, WORN)
    np.testing.assert_array_equal(log.users.user_id, half_log.users.user_id)  # the same users and catalog
    np.testing.assert_array_equal(log.catalog.quality, half_log.catalog.quality)
    # The same luck per user, not per send: on day 0 (no history yet) the second half's choices and opens are
    # the logging run's, although the first half sent nothing (sequential draws would have shifted them).
    rest = slice(USERS // 2, None)
    np.testing.assert_array_equal(log.history.message[rest, 0], half_log.history.message[rest, 0])
    np.testing.assert_array_equal(log.engaged[rest, 0], half_log.engaged[rest, 0])
    assert log.engaged[rest, 0].sum() > 5 and not half_log.history.sent[: USERS // 2].any()


def test_the_myopic_policy_wins_opens_and_loses_months_of_activity_when_sends_wear_users() -> None:
    _, myopic = roll_out(most_engaging, USERS, DAYS, SEED, WORN)
    _, logging = roll_out(logging_policy(), USERS, DAYS, SEED, WORN)
    _, nothing = roll_out(send_nothing, USERS, DAYS, SEED, WORN)
    assert myopic.per_user_opens.mean() > 1.5 * logging.per_user_opens.mean()
    # Paired over the same users: the myopic policy costs active days in the last 8 weeks, well beyond noise.
    loss = logging.per_user_active_days - myopic.per_user_active_days
    assert loss.mean() > 4 * loss.std(ddof=1) / np.sqrt(USERS)
    assert nothing.per_user_active_days.mean() > logging.per_user_active_days.mean()
    assert nothing.per_user_sends.sum() == 0 and nothing.reachable[1:].tolist() == [1.0, 1.0]
    assert myopic.reachable.min() < logging.reachable.min()  # it also mutes more channels


def test_weariness_is_what_separates_the_policies_in_the_long_run() -> None:
    calm = WorldConfig(long_term_strength=0.0)
    gap = {}
    for name, world in (("calm", calm), ("worn", WORN)):
        _, logging = roll_out(logging_policy(), USERS, DAYS, SEED, world)
        _, light = roll_out(logging_policy(none_share=0.8), USERS, DAYS, SEED, world)
        gap[name] = (light.per_user_active_days - logging.per_user_active_days).mean()
    assert gap["worn"] > gap["calm"] + 1.0  # sending less buys more active days once sends wear users out


def test_a_policy_offering_an_ineligible_action_is_refused() -> None:
    def everything(view: DayView) -> np.ndarray:
        return np.ones_like(view.decision.probabilities) / view.decision.probabilities.shape[1]

    with pytest.raises(InputError, match="0 on ineligible ones"):
        run_days(np.random.default_rng(0), 50, 10, WorldConfig(), policy=everything, common_draws=0)


def test_expected_conversions_are_what_the_world_draws() -> None:
    from mtr.sim.rollout import expected_conversions
    from mtr.sim.writer import simulate_tables

    log, tables = simulate_tables(1500, 60, 4, WorldConfig())
    first, last = 20, 50
    expected = expected_conversions(log, first, last)
    days = (tables["conversions"]["ts"].dt.epoch("us").to_numpy() - log.start_us) / 86_400_000_000
    drawn = ((days >= first) & (days < last)).sum()
    # Poisson counts: the drawn total is within 4 standard deviations of the expected one.
    assert abs(drawn - expected.sum()) < 4 * np.sqrt(expected.sum())
    assert expected.sum() > 300
