"""Fitted-Q evaluation and the per-decision estimators over logged journeys, against answers known in advance:
the logging policy's own value (its logged returns), the contextual-bandit DR at a one-step horizon, and the
simulator's truth of policies that send more or less."""

from __future__ import annotations

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.ope.estimators import evaluate
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.rl.fitted_q import fit_q, fitted_q_evaluation, per_decision_estimates
from mtr.rl.trajectories import collect_journeys, journey_truth
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.policy import PolicyDecision
from mtr.sim.config import WorldConfig
from mtr.sim.rollout import logging_policy, most_engaging, send_nothing

QUICK = {"pretraining_epochs": 2, "representation_rounds": 1}


def test_one_step_doubly_robust_is_the_contextual_bandit_dr() -> None:
    _, journeys = collect_journeys(300, 20, 0, WorldConfig(), 10, 1, {"lighter": logging_policy(none_share=0.8)})
    reward = journeys.reward({"active": 1.0, "opens": 0.5})
    fitted = fit_q(journeys, reward, journeys.policy("lighter"), **QUICK)
    ours = per_decision_estimates(journeys, reward, "lighter", fitted)["pddr"]

    n_users, width = journeys.n_users, journeys.candidates.shape[1]
    channel = np.zeros((n_users, width), dtype=np.int8)
    channel[:, 0] = NONE_CODE
    groups = CandidateGroups.build(
        np.full(n_users, width), channel.reshape(-1), np.arange(n_users), np.zeros(n_users, dtype=np.int64)
    )
    feedback = LoggedFeedback(
        groups=groups,
        logged_index=np.arange(n_users) * width + journeys.chosen[:, 0],
        propensity=journeys.propensity()[:, 0],
        rewards=reward,
        mask=np.ones((n_users, 1), bool),
        predicted=fitted.step_values(journeys, 0).reshape(-1, 1),
        reward_names=("value",),
    )
    target = PolicyDecision(groups, probabilities=journeys.policy("lighter")[:, 0].reshape(-1))
    bandit = evaluate(feedback, target, ["dr", "ips"]).estimates["value"]
    assert ours.value == pytest.approx(bandit["dr"].value, rel=1e-9)
    assert ours.standard_error == pytest.approx(bandit["dr"].standard_error, rel=1e-6)
    pdis = per_decision_estimates(journeys, reward, "lighter", None)["pdis"]
    assert pdis.value == pytest.approx(bandit["ips"].value, rel=1e-9)


def test_the_logging_policy_is_valued_at_its_logged_return_and_truth() -> None:
    world = WorldConfig(long_term_strength=1.0)
    _, journeys = collect_journeys(400, 40, 1, world, 12, 21)
    reward = journeys.reward({"active": 1.0})
    estimate = fitted_q_evaluation(journeys, reward, "logging", **QUICK)
    logged = reward.sum(1).mean()
    assert estimate.value == pytest.approx(logged, rel=0.01)
    assert per_decision_estimates(journeys, reward, "logging", None)["pdis"].value == pytest.approx(logged)
    truth = journey_truth(400, 40, 1, world, 12, 21, logging_policy())["active"].mean()
    low, high = estimate.interval
    assert low < truth < high


@pytest.mark.slow
def test_fqe_ranks_lighter_and_heavier_senders_as_the_truth_does_over_eight_weeks() -> None:
    world = WorldConfig(long_term_strength=1.0)
    targets = {"nothing": send_nothing, "myopic": most_engaging}
    _, journeys = collect_journeys(800, 86, 0, world, 28, 56, targets)
    reward = journeys.reward({"active": 1.0})
    estimated = {name: fitted_q_evaluation(journeys, reward, name).value for name in ("logging", *targets)}
    truth = {
        name: journey_truth(800, 86, 0, world, 28, 56, policy)["active"].mean()
        for name, policy in {"logging": logging_policy(), **targets}.items()
    }
    assert sorted(estimated, key=estimated.get) == sorted(truth, key=truth.get) == ["myopic", "logging", "nothing"]
    for name in estimated:
        assert estimated[name] == pytest.approx(truth[name], rel=0.12)


def test_bad_inputs_name_what_is_wrong() -> None:
    _, journeys = collect_journeys(50, 12, 0, WorldConfig(), 5, 3)
    with pytest.raises(InputError, match="policy 'lighter'"):
        journeys.policy("lighter")
    with pytest.raises(InputError, match="unknown signal 'clicks'"):
        journeys.reward({"clicks": 1.0})
    with pytest.raises(InputError, match="reward must be"):
        fit_q(journeys, np.zeros((50, 4)), None)
    with pytest.raises(InputError, match="journeys: days"):
        collect_journeys(50, 12, 0, WorldConfig(), 5, 7)
