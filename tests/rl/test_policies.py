"""Learned long-term policies at work: the environment's rollout agrees with the simulator's truth, and fitted-Q
iteration learns to send less where sends wear users out."""

from __future__ import annotations

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.rl.fitted_q import fit_q
from mtr.rl.policies import learned, learned_probabilities, rollout_in_env
from mtr.rl.trajectories import collect_journeys, journey_truth
from mtr.sim.config import WorldConfig
from mtr.sim.rollout import logging_policy, most_engaging

WORN = WorldConfig(long_term_strength=2.0)


def test_the_environment_rollout_of_the_logging_policy_is_its_truth() -> None:
    users, days, first, horizon = 120, 30, 10, 15
    ours = rollout_in_env(users, days, 4, WORN, first, horizon, None)
    truth = journey_truth(users, days, 4, WORN, first, horizon, logging_policy())
    assert set(ours) == set(truth)
    for signal in ("sends", "opens", "unsubscribes", "reachable_push", "reachable_email", "reachable_in_app"):
        np.testing.assert_array_equal(ours[signal], truth[signal])
    assert truth["reachable_email"].mean() < 1.0 and truth["reachable_push"].mean() < 1.0  # some left, some web
    np.testing.assert_allclose(ours["active"], truth["active"], rtol=1e-12)
    np.testing.assert_allclose(ours["conversions"], truth["conversions"], rtol=1e-9)


def test_the_learned_policy_follows_a_reward_it_can_read_and_sends_what_the_logging_policy_would() -> None:
    users, first, horizon = 200, 8, 12
    days = first + horizon + 2
    _, journeys = collect_journeys(users, days, 0, WORN, first, horizon)
    logged = journey_truth(users, days, 0, WORN, first, horizon, logging_policy())
    quick = {"pretraining_epochs": 2, "representation_rounds": 1}
    costly = fit_q(journeys, journeys.reward({"sends": -1.0}), None, **quick)
    assert rollout_in_env(users, days, 0, WORN, first, horizon, learned(costly))["sends"].sum() == 0
    wanted = fit_q(journeys, journeys.reward({"sends": 1.0}), None, **quick)
    probabilities = learned_probabilities(wanted, journeys)
    sends = probabilities[:, :-1, 1:].sum(2)  # the logged states where the policy sends
    assert sends.mean() > 0.95
    logging_sends = journeys.logging[:, :-1, 1:]
    conditional = logging_sends / np.maximum(logging_sends.sum(2, keepdims=True), 1e-300)
    np.testing.assert_allclose(probabilities[:, :-1, 1:][sends > 0], conditional[sends > 0], atol=1e-9)
    assert rollout_in_env(users, days, 0, WORN, first, horizon, learned(wanted))["sends"].mean() > 1.5 * (
        logged["sends"].mean()
    )


@pytest.mark.slow
def test_at_the_default_scale_the_learned_policy_keeps_more_active_days_than_the_myopic_one() -> None:
    world, users, first, horizon = WorldConfig(long_term_strength=1.0), 800, 28, 56
    days = first + horizon + 2
    _, journeys = collect_journeys(users, days, 0, world, first, horizon)
    fitted = fit_q(journeys, journeys.reward({"active": 1.0}), None)
    ours = rollout_in_env(users, days, 0, world, first, horizon, learned(fitted))
    myopic = journey_truth(users, days, 0, world, first, horizon, most_engaging)
    assert (ours["active"] - myopic["active"]).mean() > 1.0  # active days per user over 8 weeks
    assert ours["sends"].mean() < myopic["sends"].mean() and ours["unsubscribes"].mean() < myopic["unsubscribes"].mean()


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

    (tmp_path / "policy" / "extra.bin").write_bytes(b"not listed")
    with pytest.raises(InputError, match=r"file\(s\) \['extra.bin'\] not listed"):
        LongTermPolicy.load(tmp_path / "policy")
    (tmp_path / "policy" / "extra.bin").unlink()
    program = tmp_path / "policy" / "program.pt2"
    program.write_bytes(program.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(InputError, match="checksum mismatch for 'program.pt2'"):
        LongTermPolicy.load(tmp_path / "policy")
    manifest = tmp_path / "policy" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"program.pt2":', '"renamed.pt2":'))
    with pytest.raises(InputError, match="must list program.pt2"):
        LongTermPolicy.load(tmp_path / "policy")
