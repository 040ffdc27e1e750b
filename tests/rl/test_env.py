"""The messaging environment: gymnasium's vector API, the simulator's log and truth reproduced, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from mtr.errors import InputError
from mtr.rl.env import MessagingEnv
from mtr.rl.features import REWARD_SIGNALS, state_names, user_state
from mtr.sim.config import PRE_PERIOD_DAYS, WorldConfig
from mtr.sim.engine import run_days
from mtr.sim.logging_policy import sample_actions
from mtr.sim.outcomes import sigmoid
from mtr.sim.rollout import drawn_activity, expected_active_days_between, expected_conversions

WORN = WorldConfig(long_term_strength=1.0)


def logging_choices(info: dict, seed: int, day: int) -> np.ndarray:
    """The logging policy's choices of a day, drawn with run_days' common random numbers (row 0 of (seed, day))."""
    n_users = len(info["day"])
    return sample_actions(info["logging_probabilities"], np.random.default_rng([seed, day]).random((3, n_users))[0])


def first_eligible_send(mask: np.ndarray) -> np.ndarray:
    """[U] each user's first allowed send (0 when none): a deterministic policy."""
    sends = mask[:, 1:].astype(bool)
    return np.where(sends.any(1), sends.argmax(1) + 1, 0)


def test_a_random_masked_policy_runs_episodes_and_autoresets_through_gymnasium() -> None:
    users, days = 60, 20
    env = MessagingEnv(users, days, seed=4, reward_weights={"active": 1.0, "opens": 0.5})
    env = RecordEpisodeStatistics(env, buffer_length=2 * users)
    observations, info = env.reset(seed=4)
    assert observations["state"].shape == (users, len(state_names()))
    assert env.action_space.shape == (users,)
    env.single_action_space.seed(0)
    returns = np.zeros(users)
    for step in range(2 * days + 1):  # two episodes, and the autoreset step between them
        actions = np.array([env.single_action_space.sample(mask=row) for row in observations["mask"]])
        observations, rewards, terminated, truncated, info = env.step(actions)
        assert env.observation_space.contains(observations)
        assert np.all(observations["mask"][:, 0] == 1)
        assert not terminated.any()
        if step == days:  # the autoreset step: a new episode's first day, no reward
            np.testing.assert_array_equal(info["day"], 0)
            np.testing.assert_array_equal(rewards, 0.0)
            assert not truncated.any()
            returns[:] = 0.0
            continue
        np.testing.assert_allclose(rewards, info["reward"]["active"] + 0.5 * info["reward"]["opens"])
        returns += rewards
        assert truncated.all() == (step % (days + 1) == days - 1)  # every user's episode ends after `days` days
        if truncated.all():
            assert info["_episode"].all()
            np.testing.assert_array_equal(info["episode"]["l"], days)
            np.testing.assert_allclose(info["episode"]["r"], returns)
            assert observations["mask"][:, 1:].sum() == 0  # after the last day, nothing is left to send
    assert len(env.return_queue) == 2 * users


def test_replaying_the_logging_policy_reproduces_run_days_and_its_truth() -> None:
    users, days, seed = 150, 40, 3
    env = MessagingEnv(users, days, seed, WORN, {name: 1.0 for name in REWARD_SIGNALS})
    log = run_days(np.random.default_rng(seed), users, days, WORN, common_draws=seed)
    _, info = env.reset()
    signals = {name: np.zeros((users, days)) for name in REWARD_SIGNALS}
    for day in range(days):
        actions = logging_choices(info, seed, day)
        np.testing.assert_array_equal(env.common_actions(), actions)
        np.testing.assert_array_equal(env.common_actions(info["logging_probabilities"]), actions)
        np.testing.assert_array_equal(info["logging_probabilities"][np.arange(users), actions], log.propensity[:, day])
        observations, rewards, _, truncated, info = env.step(actions)
        for name in REWARD_SIGNALS:
            signals[name][:, day] = info["reward"][name]
        np.testing.assert_allclose(rewards, sum(info["reward"][name] for name in REWARD_SIGNALS))
    assert truncated.all()
    np.testing.assert_array_equal(signals["sends"], log.history.sent)
    np.testing.assert_array_equal(signals["opens"], log.engaged)
    np.testing.assert_array_equal(signals["unsubscribes"], log.unsubscribed)
    assert log.unsubscribed.any() and log.engaged.any()
    # "active" of day t is the truth's probability of activity on day t + 1, to the bit.
    next_days = log.truth.offsets[:, PRE_PERIOD_DAYS + 1 : PRE_PERIOD_DAYS + days + 1]
    np.testing.assert_array_equal(signals["active"], sigmoid(log.truth.activity_base[:, None] + next_days))
    np.testing.assert_allclose(signals["active"].sum(1), expected_active_days_between(log, 1, days + 1), rtol=1e-12)
    np.testing.assert_allclose(signals["conversions"].sum(1), expected_conversions(log, 0, days), rtol=1e-12)
    # The final state is read from the log and from its activity drawn as `drawn_activity` draws it.
    unsubscribe_day = np.full((users, 3), np.iinfo(np.int32).max, dtype=np.int64)
    for user, day in zip(*np.nonzero(log.unsubscribed), strict=True):
        unsubscribe_day[user, log.history.channel[user, day]] = day
    expected = user_state(log.users, log.history.sent, log.engaged, drawn_activity(log, seed), unsubscribe_day, days)
    np.testing.assert_array_equal(observations["state"], expected)


def test_an_autoreset_episode_draws_fresh_luck_and_reset_with_the_seed_replays_the_first() -> None:
    users, days, seed = 80, 15, 5
    env = MessagingEnv(users, days, seed, reward_weights={"opens": 1.0})

    def episode_opens(observations: dict) -> tuple[np.ndarray, dict]:
        opens = np.zeros(users)
        for _ in range(days):
            observations, rewards, *_ = env.step(first_eligible_send(observations["mask"]))
            opens += rewards
        return opens, observations

    first, last = episode_opens(env.reset()[0])
    observations, *_ = env.step(np.zeros(users, np.int64))  # the autoreset step
    second, _ = episode_opens(observations)
    replayed, _ = episode_opens(env.reset(seed=seed)[0])
    np.testing.assert_array_equal(replayed, first)
    assert not np.array_equal(second, first)


def test_an_ineligible_action_and_an_unknown_reward_name_are_clear_errors() -> None:
    with pytest.raises(InputError, match=r"reward_weights: unknown signal 'clicks'"):
        MessagingEnv(50, 20, seed=1, reward_weights={"active": 1.0, "clicks": 1.0})
    env = MessagingEnv(50, 20, seed=1)
    observations, _ = env.reset()
    actions = np.zeros(50, np.int64)
    actions[7] = int(np.argmin(observations["mask"][7]))  # a candidate user 7 may not receive
    assert observations["mask"][7, actions[7]] == 0
    with pytest.raises(InputError, match=r"user 7 chose action \d+ on day 0, which its mask does not allow"):
        env.step(actions)
    actions[7] = env.max_actions + 1
    with pytest.raises(InputError, match=r"user 7 chose action"):
        env.step(actions)
    with pytest.raises(InputError, match=r"expected \[50\] integers"):
        env.step(np.zeros(49, np.int64))
    with pytest.raises(InputError, match=r"reset_mask'\] must be all True"):
        env.reset(options={"reset_mask": np.arange(50) < 10})


def test_weariness_lowers_next_day_activity_after_sends() -> None:
    users, days, seed = 100, 30, 2
    fresh, worn = MessagingEnv(users, days, seed), MessagingEnv(users, days, seed, WORN)
    (_, info), _ = fresh.reset(), worn.reset()
    sent_so_far = np.zeros(users, bool)
    for day in range(days):
        actions = logging_choices(info, seed, day)  # the same actions in both worlds
        _, fresh_active, _, _, info = fresh.step(actions)
        _, worn_active, *_ = worn.step(actions)
        sent_so_far |= actions > 0
        assert np.all(worn_active[sent_so_far] < fresh_active[sent_so_far])
        np.testing.assert_array_equal(worn_active[~sent_so_far], fresh_active[~sent_so_far])
    assert sent_so_far.mean() > 0.9


def test_a_reward_weight_must_be_a_finite_number() -> None:
    with pytest.raises(InputError, match=r"reward_weights: the weight of 'active' must be a finite number"):
        MessagingEnv(50, 20, seed=1, reward_weights={"active": float("nan")})
