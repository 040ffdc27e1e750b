"""The study's evaluator (fast deterministic path, general stochastic path) against fuse -> decide -> evaluate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.ope.estimators import ESTIMATORS, evaluate
from mtr.ope.evaluator import PolicyEvaluator, dominated_sends
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.schema import OBJECTIVES
from mtr.scoring.fusion import FusionInputs, fuse
from mtr.scoring.policy import PolicyConfig, decide
from mtr.scoring.weights import FusionWeights


def bandit_problem(
    make_bandit: Callable[..., Any], n_groups: int, seed: int, unobserved_every: int, reward: int
) -> tuple[FusionInputs, LoggedFeedback, np.ndarray]:
    """Fusion inputs, feedback with send volume and truth of a synthetic log; one reward is missing on every
    `unobserved_every`-th row, as immature labels are."""
    log = make_bandit(n_groups=n_groups, n_rewards=4, seed=seed)
    feedback = log.feedback.with_send_volume()
    mask = feedback.mask.copy()
    mask[::unobserved_every, reward] = False
    feedback = replace(feedback, mask=mask)
    truth = np.column_stack([log.truth, log.groups.is_send()])
    return FusionInputs(log.groups, log.truth.astype(np.float32)), feedback, truth


@pytest.fixture(scope="module")
def problem(make_bandit):
    return bandit_problem(make_bandit, n_groups=3000, seed=3, unobserved_every=7, reward=1)


WEIGHTS = [
    FusionWeights(conversion=1.0, engagement=0.3, retention=0.5, unsubscribe=2.0, send_cost=0.05),
    FusionWeights(conversion=0.2, engagement=1.0, retention=0.0, unsubscribe=0.5, send_cost=0.0),
    FusionWeights(conversion=1.0, unsubscribe=1.0, per_channel={"push": {"send_cost": 0.3}}),
    FusionWeights(conversion=1.0, engagement=0.5, unsubscribe=1.0, transform="log"),
]


@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("threshold", [0.0, 0.1])
def test_decisions_and_estimates_equal_the_general_path(problem, weights, threshold):
    inputs, feedback, truth = problem
    policy = PolicyConfig(threshold=threshold)
    evaluator = PolicyEvaluator(inputs, feedback, FusionWeights(transform=weights.transform), truth)
    decision = evaluator.decide(weights, policy)
    reference = decide(inputs.groups, fuse(inputs, weights), policy)
    np.testing.assert_array_equal(decision.chosen, reference.chosen)
    assert_estimates_equal_the_general_path(evaluator, decision, reference, truth)


@pytest.mark.parametrize("temperature", [0.05, 0.5])
def test_softmax_policies_are_evaluated_as_the_general_path_does(problem, temperature):
    inputs, feedback, truth = problem
    weights, policy = WEIGHTS[0], PolicyConfig(threshold=0.05, temperature=temperature)
    evaluator = PolicyEvaluator(inputs, feedback, truth=truth)
    decision = evaluator.decide(weights, policy)
    reference = decide(inputs.groups, fuse(inputs, weights), policy)
    np.testing.assert_allclose(decision.probabilities, reference.probabilities, rtol=0, atol=1e-7)
    assert np.mean(inputs.groups.group_max(decision.probabilities) < 0.99) > 0.1  # really stochastic
    assert_estimates_equal_the_general_path(evaluator, decision, reference, truth)


def assert_estimates_equal_the_general_path(evaluator, decision, reference, truth) -> None:
    """Every registered estimator and the truth of the evaluator's decision equal `evaluate`'s and the oracle's."""
    feedback = evaluator.feedback
    general = evaluate(feedback, reference)
    for estimator in ESTIMATORS:
        expected = [general.value(r, estimator) for r in feedback.reward_names]
        np.testing.assert_allclose(evaluator.estimate(decision, estimator), expected, rtol=1e-9)
    per_row = reference.expectation(truth)
    expected_truth = [per_row[feedback.mask[:, k], k].mean() for k in range(truth.shape[1])]
    np.testing.assert_allclose(evaluator.true_value(decision), expected_truth, rtol=1e-9)


def test_pruning_removes_candidates_but_no_decision(problem):
    inputs, feedback, _ = problem
    pruned = PolicyEvaluator(inputs, feedback, prune=True)
    full = PolicyEvaluator(inputs, feedback, prune=False)
    assert pruned.kept < full.kept
    rng = np.random.default_rng(0)
    for _ in range(20):
        weights = FusionWeights(dict(zip(OBJECTIVES, rng.uniform(0, 2, 4), strict=True)), send_cost=rng.uniform(0, 0.2))
        policy = PolicyConfig(threshold=float(rng.uniform(0, 0.1)))
        np.testing.assert_array_equal(pruned.decide(weights, policy).chosen, full.decide(weights, policy).chosen)


def test_dominated_sends_on_a_hand_made_group():
    # One group: none, then push a, push b (dominated by a), email c (other channel: kept), push d = a (a tie: later).
    terms = np.array([[0, 0], [0.3, -0.1], [0.2, -0.2], [0.1, -0.3], [0.3, -0.1]], dtype=np.float32)
    channel = np.array([3, 0, 0, 1, 0], dtype=np.int8)
    group_of = np.zeros(5, dtype=np.int64)
    np.testing.assert_array_equal(dominated_sends(terms, channel, group_of), [False, False, True, False, True])


def test_doubly_robust_estimates_without_a_reward_model_are_refused_by_name(problem):
    inputs, feedback, _ = problem
    evaluator = PolicyEvaluator(inputs, replace(feedback, predicted=None), estimators=list(ESTIMATORS))
    decision = evaluator.decide(WEIGHTS[0], PolicyConfig())
    assert np.all(np.isfinite(evaluator.estimate(decision, "ips")))
    with pytest.raises(InputError, match="estimator 'dr' needs the model's predictions"):
        evaluator.estimate(decision, "dr")


def test_binary_rates_are_bounded_alike_in_both_paths(problem: tuple[FusionInputs, LoggedFeedback, np.ndarray]) -> None:
    # A reward never observed to happen, which the model puts at 0.5 for the logged actions only: on each of the M
    # rows where the policy takes the logged action, DR adds 0.5 - 0.5 / mu < 0, so DR is below 0. Both paths
    # report 0 there, never a negative rate.
    inputs, feedback, truth = problem
    rewards, predicted = feedback.rewards.copy(), feedback.predicted.copy()
    rewards[:, 0], predicted[:, 0] = 0.0, 0.0
    predicted[feedback.logged_index, 0] = 0.5
    bounded = replace(feedback, rewards=rewards, predicted=predicted, binary=(True,) * len(feedback.reward_names))
    evaluator = PolicyEvaluator(inputs, bounded, truth=truth)
    for weights in WEIGHTS:
        decision = evaluator.decide(weights, PolicyConfig())
        assert_estimates_equal_the_general_path(evaluator, decision, decision, truth)
        for estimator in ESTIMATORS:
            assert np.all(
                (evaluator.estimate(decision, estimator) >= 0) & (evaluator.estimate(decision, estimator) <= 1)
            )
        assert evaluate(replace(bounded, binary=None), decision).value(feedback.reward_names[0], "dr") < 0
        assert evaluator.estimate(decision, "dr")[0] == 0.0


def test_thresholded_estimators_agree_where_the_threshold_binds(make_bandit: Callable[..., Any]) -> None:
    # 300 opportunities: the threshold sqrt(300) = 17 cuts the largest weights, so clipped DR, Switch-DR and DRos
    # differ from DR, and the sparse path must transform them as `evaluate` does (per reward n, one reward masked).
    inputs, feedback, truth = bandit_problem(make_bandit, n_groups=300, seed=4, unobserved_every=3, reward=2)
    evaluator = PolicyEvaluator(inputs, feedback, truth=truth)
    differs = 0
    for weights in WEIGHTS[:2]:
        decision = evaluator.decide(weights, PolicyConfig())
        assert_estimates_equal_the_general_path(evaluator, decision, decision, truth)
        for estimator in ("dr_clip", "switch_dr"):
            differs += not np.allclose(evaluator.estimate(decision, estimator), evaluator.estimate(decision, "dr"))
    assert differs == 4  # the threshold binds for both estimators and both policies
