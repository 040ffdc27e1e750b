"""Learned long-term policies at work: the environment's rollout agrees with the simulator's truth, and fitted-Q
iteration learns to send less where sends wear users out."""

from __future__ import annotations

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.rl.fitted_q import fit_q, fitted_q_evaluation
from mtr.rl.policies import learned, learned_probabilities, rollout_in_env
from mtr.rl.trajectories import collect_journeys, journey_truth
from mtr.sim.config import WorldConfig
from mtr.sim.rollout import logging_policy

WORN = WorldConfig(long_term_strength=2.0)


def test_the_environment_rollout_of_the_logging_policy_is_its_truth() -> None:
    users, days, first, horizon = 120, 30, 10, 15
    ours = rollout_in_env(users, days, 4, WORN, first, horizon, None)
    truth = journey_truth(users, days, 4, WORN, first, horizon, logging_policy())
    for signal in ("sends", "opens", "unsubscribes"):
        np.testing.assert_array_equal(ours[signal], truth[signal])
    np.testing.assert_allclose(ours["active"], truth["active"], rtol=1e-12)
    np.testing.assert_allclose(ours["conversions"], truth["conversions"], rtol=1e-9)


def test_fitted_q_iteration_sends_less_and_keeps_more_active_days_where_sends_wear_users_out() -> None:
    users, first, horizon = 400, 14, 28
    days = first + horizon + 2
    _, journeys = collect_journeys(users, days, 0, WORN, first, horizon)
    fitted = fit_q(journeys, journeys.reward({"active": 1.0}), None, pretraining_epochs=3, representation_rounds=1)
    ours = rollout_in_env(users, days, 0, WORN, first, horizon, learned(fitted))
    logged = journey_truth(users, days, 0, WORN, first, horizon, logging_policy())
    assert ours["sends"].mean() < 0.5 * logged["sends"].mean()
    assert (ours["active"] - logged["active"]).mean() > 0.3  # active days per user over 4 weeks
    journeys.targets["learned"] = learned_probabilities(fitted, journeys)
    valued = fitted_q_evaluation(journeys, journeys.reward({"active": 1.0}), "learned")
    assert valued.value == pytest.approx(ours["active"].mean(), rel=0.1)


def test_the_exported_policy_decides_as_the_fitted_one_and_refuses_an_edited_program(tmp_path) -> None:
    from mtr.rl.env import MessagingEnv
    from mtr.rl.features import action_names, state_names
    from mtr.serving.long_term import LongTermPolicy, export_long_term_policy

    users, first, horizon = 150, 6, 8
    _, journeys = collect_journeys(users, first + horizon + 2, 1, WORN, first, horizon)
    fitted = fit_q(journeys, journeys.reward({"active": 1.0}), None, pretraining_epochs=1, representation_rounds=0)
    described = {"state_features": list(state_names()), "candidate_features": list(action_names(WORN.hours))}
    export_long_term_policy(fitted.network, described, tmp_path / "policy")
    loaded = LongTermPolicy.load(tmp_path / "policy")
    assert loaded.manifest["horizon"] == horizon

    env = MessagingEnv(users, first + horizon + 2, 1, WORN)
    observation, info = env.reset(seed=1)
    ours, theirs = learned(fitted), loaded.probabilities
    sent = 0
    for to_go in range(horizon, 0, -1):
        probabilities = ours(observation, info, to_go)
        np.testing.assert_allclose(theirs(observation, info, to_go), probabilities, atol=1e-6)
        sent += int((probabilities[:, 0] < 1).sum())
        observation, _, _, _, info = env.step(env.common_actions(probabilities))
    assert sent > 0  # the comparison covered states where the policy sends

    program = tmp_path / "policy" / "program.pt2"
    program.write_bytes(program.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="checksum mismatch for 'program.pt2'"):
        LongTermPolicy.load(tmp_path / "policy")
