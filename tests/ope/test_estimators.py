"""Off-policy estimators on cases with known answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.ope.estimators import effective_sample_size, evaluate, snips
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.policy import PolicyConfig, PolicyDecision, decide


def test_target_equal_to_logging_gives_the_on_policy_mean_exactly(bandit: Any) -> None:
    result = evaluate(bandit.feedback, PolicyDecision(bandit.groups, probabilities=bandit.logging))
    on_policy = bandit.feedback.rewards.mean(axis=0)
    for k, name in enumerate(bandit.feedback.reward_names):
        assert result.value(name, "ips") == pytest.approx(on_policy[k], abs=1e-12)
        assert result.value(name, "snips") == pytest.approx(on_policy[k], abs=1e-12)
        assert result.effective_sample_size[name] == pytest.approx(bandit.groups.n_groups)


def test_deterministic_policy_on_a_uniform_log_by_hand() -> None:
    # Four opportunities, each with none and one push, logged uniformly (propensity 1/2).
    groups = CandidateGroups.build(np.full(4, 2), np.tile([NONE_CODE, 0], 4), np.arange(4), np.zeros(4))
    logged = np.array([1, 2, 5, 7])  # push, none, push, push
    rewards = np.array([[1.0], [1.0], [0.0], [1.0]])
    feedback = LoggedFeedback(groups, logged, np.full(4, 0.5), rewards, np.ones((4, 1), bool), None, ("click",))
    always_push = PolicyDecision(groups, chosen=np.array([1, 3, 5, 7]))
    result = evaluate(feedback, always_push)
    assert result.value("click", "ips") == pytest.approx((2 * 1 + 0 + 2 * 0 + 2 * 1) / 4)
    assert result.value("click", "snips") == pytest.approx(2 / 3)
    assert result.effective_sample_size["click"] == pytest.approx(3.0)  # (2+2+2)^2 / (4+4+4)
    assert "dr" not in result.estimates["click"]  # no reward model, no DR


def test_snips_is_shift_equivariant_and_ips_is_not(bandit: Any) -> None:
    target = decide(bandit.groups, -bandit.truth[:, 0], PolicyConfig(temperature=0.3))
    weight = target.probability_of(bandit.feedback.logged_index) / bandit.feedback.propensity
    reward = bandit.feedback.rewards[:, 0]
    assert snips(weight, reward + 5.0).value == pytest.approx(snips(weight, reward).value + 5.0, rel=1e-12)
    ips_shift = np.mean(weight * (reward + 5.0)) - np.mean(weight * reward)
    assert abs(ips_shift - 5.0) > 1e-3  # the weights do not average to exactly 1 in a finite sample


def test_dr_with_a_perfect_reward_model_is_exact_and_has_only_context_variance(bandit: Any) -> None:
    # Deterministic rewards equal to the model's predictions: every correction term vanishes, so DR is the
    # true value of these opportunities, and its only variance is that of the per-opportunity values.
    deterministic = (bandit.truth > 0.3).astype(np.float64)
    feedback = dataclasses.replace(
        bandit.feedback, rewards=deterministic[bandit.feedback.logged_index], predicted=deterministic
    )
    target = decide(bandit.groups, bandit.truth[:, 1], PolicyConfig(threshold=0.2))
    result = evaluate(feedback, target)
    truth = target.expectation(deterministic).mean(axis=0)
    for k, name in enumerate(feedback.reward_names):
        assert result.value(name, "dr") == pytest.approx(truth[k], abs=1e-12)
        # A user's opportunities are one cluster: the per-opportunity values are summed per user first.
        centred = target.expectation(deterministic)[:, k] - truth[k]
        per_user = np.bincount(bandit.groups.user, weights=centred)
        users = len(np.unique(bandit.groups.user))
        context_se = np.sqrt(users / (users - 1) * per_user @ per_user) / bandit.groups.n_groups
        assert result.estimates[name]["dr"].standard_error == pytest.approx(context_se, rel=1e-9)
        assert result.estimates[name]["dr"].standard_error < result.estimates[name]["ips"].standard_error


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_estimates_cover_the_true_value_of_a_greedy_policy(seed: int, make_bandit: Callable) -> None:
    log = make_bandit(n_groups=20000, seed=seed)
    target = decide(log.groups, log.truth[:, 0] - 0.3, PolicyConfig())
    truth = log.true_value(target)
    result = evaluate(log.feedback, target)
    for k, name in enumerate(log.feedback.reward_names):
        for estimator in ("ips", "snips", "dr"):
            estimate = result.estimates[name][estimator]
            # 4 standard errors: a failure here is a bias, not bad luck.
            assert abs(estimate.value - truth[k]) < 4 * estimate.standard_error, (name, estimator)
        # The reward model is the truth, so DR is much tighter than IPS.
        assert result.estimates[name]["dr"].standard_error < result.estimates[name]["ips"].standard_error


def test_masked_rows_are_left_out(bandit: Any) -> None:
    mask = bandit.feedback.mask.copy()
    mask[::2, 0] = False
    feedback = dataclasses.replace(bandit.feedback, mask=mask)
    target = PolicyDecision(bandit.groups, probabilities=bandit.logging)
    result = evaluate(feedback, target)
    assert result.n_rows["reward_0"] == bandit.groups.n_groups // 2
    assert result.value("reward_0", "ips") == pytest.approx(bandit.feedback.rewards[1::2, 0].mean())


def test_send_volume_is_estimated_exactly_by_dr(bandit: Any) -> None:
    feedback = bandit.feedback.with_send_volume()
    target = decide(bandit.groups, bandit.truth[:, 0] - 0.4, PolicyConfig())
    result = evaluate(feedback, target)
    assert result.value("send_volume", "dr") == pytest.approx(target.send_rate(), abs=1e-12)
    assert (
        abs(result.value("send_volume", "ips") - target.send_rate())
        < 4 * result.estimates["send_volume"]["ips"].standard_error
    )


def test_effective_sample_size_known_values() -> None:
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)
    assert effective_sample_size(np.array([1.0, 0.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert effective_sample_size(np.array([2.0, 1.0])) == pytest.approx(9 / 5)


def test_logged_actions_outside_their_group_are_rejected(bandit: Any) -> None:
    logged = bandit.feedback.logged_index.copy()
    logged[0] = bandit.groups.offsets[1]  # the next group's none
    with pytest.raises(InputError, match="not among their candidates"):
        dataclasses.replace(bandit.feedback, logged_index=logged)
    with pytest.raises(InputError, match="propensity"):
        dataclasses.replace(bandit.feedback, propensity=np.zeros(bandit.groups.n_groups))


def by_hand_log(predicted: float) -> tuple[LoggedFeedback, PolicyDecision]:
    """Four opportunities of none + one push; the push logged with propensity 1/2, 1/4, 1/8 and 1/2 (weights 2, 4,
    8, 2 for always-push), click rewards 1, 0, 1, 0, and a reward model that predicts `predicted` for every push."""
    groups = CandidateGroups.build(np.full(4, 2), np.tile([NONE_CODE, 0], 4), np.arange(4), np.zeros(4))
    logged = np.array([1, 3, 5, 7])
    rewards = np.array([[1.0], [0.0], [1.0], [0.0]])
    model = np.tile([[0.0], [predicted]], (4, 1))
    propensity = np.array([0.5, 0.25, 0.125, 0.5])
    feedback = LoggedFeedback(groups, logged, propensity, rewards, np.ones((4, 1), bool), model, ("click",), (True,))
    return feedback, PolicyDecision(groups, chosen=logged)


def test_shrinkage_estimators_by_hand() -> None:
    # n = 4: the threshold is sqrt(4) = 2, so weights 2, 4, 8, 2 become: clipped 2, 2, 2, 2; switched 2, 0, 0, 2;
    # shrunk (lambda = 4) 4 w / (w^2 + 4) = 1, 0.8, 0.47, 1. Residuals r - 0.5: +0.5, -0.5, +0.5, -0.5; direct term 0.5.
    feedback, always_push = by_hand_log(predicted=0.5)
    result = evaluate(feedback, always_push)
    residual = np.array([0.5, -0.5, 0.5, -0.5])
    assert result.value("click", "dr") == pytest.approx(0.5 + np.mean(np.array([2, 4, 8, 2]) * residual))
    assert result.value("click", "dr_clip") == pytest.approx(0.5 + np.mean(np.array([2, 2, 2, 2]) * residual))
    assert result.value("click", "switch_dr") == pytest.approx(0.5 + np.mean(np.array([2, 0, 0, 2]) * residual))
    shrunk = 4 * np.array([2, 4, 8, 2]) / (np.array([2, 4, 8, 2]) ** 2 + 4)
    assert result.value("click", "dros") == pytest.approx(0.5 + np.mean(shrunk * residual))


def test_a_binary_rate_is_never_estimated_below_zero_nor_above_one() -> None:
    # A model that overpredicts (0.9 for every push) drives DR to 0.9 + mean(w (r - 0.9)) = 0.9 - 1.7 < 0.
    feedback, always_push = by_hand_log(predicted=0.9)
    unbounded = evaluate(dataclasses.replace(feedback, binary=None), always_push)
    assert unbounded.value("click", "dr") < 0  # what an unbounded reward would get
    result = evaluate(feedback, always_push)
    assert result.value("click", "dr") == 0.0
    assert result.estimates["click"]["dr"].interval[0] == 0.0
    assert unbounded.estimates["click"]["dr"].interval[0] < 0
    # IPS overshoots the other way: (2 + 8) / 4 = 2.5 clicks per opportunity is not a rate.
    assert unbounded.value("click", "ips") == pytest.approx(2.5)
    assert result.value("click", "ips") == 1.0 and result.estimates["click"]["ips"].interval[1] == 1.0


def test_a_binary_reward_outside_zero_one_is_refused_by_name() -> None:
    feedback, _ = by_hand_log(predicted=0.5)
    with pytest.raises(InputError, match="binary reward 'click' must be in \\[0, 1\\]"):
        dataclasses.replace(feedback, rewards=feedback.rewards * 3)
    with pytest.raises(InputError, match="binary must have one flag per reward"):
        dataclasses.replace(feedback, binary=(True, False))


def test_switch_dr_is_dr_below_the_threshold_and_the_direct_method_above(bandit: Any) -> None:
    # The synthetic log's weights of a softmax target stay far below sqrt(4000) = 63: Switch-DR is DR there.
    target = decide(bandit.groups, bandit.truth[:, 0], PolicyConfig(temperature=0.5))
    result = evaluate(bandit.feedback, target)
    for name in bandit.feedback.reward_names:
        assert result.value(name, "switch_dr") == pytest.approx(result.value(name, "dr"), rel=1e-12)
    # On four rows the threshold is 2: a policy whose every weight exceeds it is estimated by the model alone.
    feedback, always_push = by_hand_log(predicted=0.3)
    one_row = dataclasses.replace(feedback, propensity=np.full(4, 0.25))  # weights 4 > 2
    assert evaluate(one_row, always_push).value("click", "switch_dr") == pytest.approx(0.3)


def test_a_users_correlated_opportunities_widen_the_interval_as_one_cluster(bandit: Any) -> None:
    """The logging policy evaluated on its own log (every weight 1), its rewards made identical within each
    user's four opportunities (a user's daily decisions share outcome windows): four identical rows carry the
    information of one, so the standard error doubles against rows taken as independent users."""
    groups, feedback = bandit.groups, bandit.feedback
    own_user, user_of_four = np.arange(groups.n_groups), np.arange(groups.n_groups) // 4
    copies = dataclasses.replace(feedback, rewards=feedback.rewards[user_of_four * 4])
    logging = PolicyDecision(groups, probabilities=bandit.logging)
    results = {}
    for name, user in (("rows", own_user), ("users", user_of_four)):
        results[name] = evaluate(dataclasses.replace(copies, groups=dataclasses.replace(groups, user=user)), logging)
    for reward in feedback.reward_names:
        assert results["users"].value(reward, "ips") == pytest.approx(results["rows"].value(reward, "ips"))
        ratio = (
            results["users"].estimates[reward]["ips"].standard_error
            / results["rows"].estimates[reward]["ips"].standard_error
        )
        assert 1.9 < ratio < 2.1, (reward, ratio)
