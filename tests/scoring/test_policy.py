"""Policy: threshold against "none", softmax probabilities, frequency caps on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.policy import FrequencyCap, PolicyConfig, decide, opportunity_probabilities

PUSH, EMAIL = 0, 1


def two_groups() -> tuple[CandidateGroups, np.ndarray]:
    """Group 0: none, push 0.3, email 0.1; group 1: none, push -0.2."""
    groups = CandidateGroups.build(
        np.array([3, 2]), np.array([NONE_CODE, PUSH, EMAIL, NONE_CODE, PUSH]), np.array([0, 1]), np.array([0, 0])
    )
    return groups, np.array([0.0, 0.3, 0.1, 0.0, -0.2], dtype=np.float32)


@pytest.mark.parametrize(("threshold", "expected"), [(0.0, [1, 3]), (0.2, [1, 3]), (0.35, [0, 3]), (-0.5, [1, 4])])
def test_best_send_goes_out_only_when_it_clears_the_threshold(threshold: float, expected: list[int]) -> None:
    groups, scores = two_groups()
    decision = decide(groups, scores, PolicyConfig(threshold=threshold))
    np.testing.assert_array_equal(decision.chosen, expected)
    assert decision.send_rate() == pytest.approx(np.mean([c not in (0, 3) for c in expected]))


def test_softmax_probabilities_match_hand_computation() -> None:
    groups, scores = two_groups()
    decision = decide(groups, scores, PolicyConfig(threshold=0.1, temperature=0.5))
    logits = np.array([0.1, 0.3, 0.1]) / 0.5
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(decision.probabilities[:3], expected, rtol=1e-5)
    np.testing.assert_allclose(groups.group_sum(decision.probabilities), [1.0, 1.0], rtol=1e-6)
    # Very low temperature: the softmax becomes the deterministic policy.
    cold = decide(groups, scores, PolicyConfig(threshold=0.1, temperature=1e-4))
    np.testing.assert_allclose(
        cold.probabilities, decide(groups, scores, PolicyConfig(threshold=0.1)).dense(), atol=1e-6
    )


def test_expectation_weights_candidate_values_by_policy_probabilities() -> None:
    groups, scores = two_groups()
    values = np.arange(10, dtype=np.float64).reshape(5, 2)
    soft = decide(groups, scores, PolicyConfig(temperature=1.0))
    np.testing.assert_allclose(soft.expectation(values)[1], soft.probabilities[3:] @ values[3:])
    hard = decide(groups, scores, PolicyConfig())
    np.testing.assert_array_equal(hard.expectation(values), values[[1, 3]])


def test_frequency_cap_blocks_a_channel_within_its_window() -> None:
    # One user, four daily opportunities; push always scores 1.0, email 0.5.
    days = 4
    groups = CandidateGroups.build(
        np.full(days, 3), np.tile([NONE_CODE, PUSH, EMAIL], days), np.zeros(days), np.arange(days)
    )
    scores = np.tile(np.array([0.0, 1.0, 0.5], dtype=np.float32), days)
    uncapped = decide(groups, scores, PolicyConfig())
    assert list(groups.channel[uncapped.chosen]) == [PUSH] * days
    capped = decide(groups, scores, PolicyConfig(cap=FrequencyCap(max_sends=1, window_days=2)))
    # push on day 0 blocks push on day 1 (email instead); push again on day 2, email on day 3.
    assert list(groups.channel[capped.chosen]) == [PUSH, EMAIL, PUSH, EMAIL]
    two_per_three = decide(groups, scores, PolicyConfig(cap=FrequencyCap(max_sends=2, window_days=3)))
    assert list(groups.channel[two_per_three.chosen]) == [PUSH, PUSH, EMAIL, PUSH]


def test_cap_is_per_user() -> None:
    groups = CandidateGroups.build(
        np.full(4, 2), np.tile([NONE_CODE, PUSH], 4), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])
    )
    scores = np.tile(np.array([0.0, 1.0], dtype=np.float32), 4)
    capped = decide(groups, scores, PolicyConfig(cap=FrequencyCap(max_sends=1, window_days=7)))
    np.testing.assert_array_equal(capped.chosen, [1, 3, 4, 6])  # both users send on day 0, nobody on day 1


def test_bad_policy_configs_raise() -> None:
    with pytest.raises(InputError, match="temperature"):
        PolicyConfig(temperature=0.0)
    with pytest.raises(InputError, match="deterministic"):
        PolicyConfig(temperature=1.0, cap=FrequencyCap())
    groups, _ = two_groups()
    with pytest.raises(InputError, match=r"scores must be \[5\]"):
        decide(groups, np.zeros(4), PolicyConfig())


@pytest.mark.parametrize("config", [PolicyConfig(threshold=0.05), PolicyConfig(threshold=0.05, temperature=0.2)])
def test_probabilities_of_candidates_listed_in_any_order_within_their_opportunity(config: PolicyConfig) -> None:
    groups, scores = two_groups()
    expected = decide(groups, scores, config).dense()
    # A caller's order: group 0 as (email, none, push), group 1 as (push, none).
    order = np.array([2, 0, 1, 4, 3])
    got = opportunity_probabilities(np.array([0, 3, 5]), groups.channel[order], scores[order], config)
    np.testing.assert_allclose(got, expected[order], rtol=1e-6)
    np.testing.assert_allclose([got[:3].sum(), got[3:].sum()], [1.0, 1.0], rtol=1e-6)


def test_policy_configs_parse_from_their_json_form_and_name_bad_fields() -> None:
    raw = {"threshold": 0.01, "temperature": None, "cap": {"max_sends": 2, "window_days": 3}}
    assert PolicyConfig.from_dict(raw) == PolicyConfig(0.01, None, FrequencyCap(2, 3))
    assert PolicyConfig.from_dict(raw).to_dict() == raw
    with pytest.raises(InputError, match=r"policy: unknown field\(s\) \['temprature'\]"):
        PolicyConfig.from_dict({"temprature": 0.1})
    with pytest.raises(InputError, match=r"policy.cap: unknown field\(s\) \['days'\]"):
        PolicyConfig.from_dict({"cap": {"days": 3}})
