"""Fusion: the none-relative convention, hand-computed scores, monotonicity, per-channel weights, product form."""

from __future__ import annotations

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.scoring.fusion import FusionInputs, FusionWeights, fuse
from mtr.scoring.groups import NONE_CODE, CandidateGroups

PUSH, EMAIL, IN_APP = 0, 1, 2
# One opportunity: none (organic conversion 0.02, retention 0.5), a push and an email send.
PROBABILITIES = np.array(
    [
        [0.02, 0.0, 0.50, 0.0],
        [0.05, 0.20, 0.55, 0.010],
        [0.03, 0.10, 0.52, 0.002],
    ]
)


def one_group(probabilities: np.ndarray = PROBABILITIES, value: np.ndarray | None = None) -> FusionInputs:
    groups = CandidateGroups.build(np.array([3]), np.array([NONE_CODE, PUSH, EMAIL]), np.array([0]), np.array([0]))
    return FusionInputs(groups, probabilities, value)


def test_identity_sum_is_the_incremental_utility_of_the_send() -> None:
    weights = FusionWeights(conversion=10.0, engagement=1.0, retention=2.0, unsubscribe=5.0, send_cost=0.01)
    scores = fuse(one_group(), weights)
    push = 10 * (0.05 - 0.02) + 1 * 0.20 + 2 * (0.55 - 0.50) - 5 * 0.010 - 0.01
    email = 10 * (0.03 - 0.02) + 1 * 0.10 + 2 * (0.52 - 0.50) - 5 * 0.002 - 0.01
    np.testing.assert_allclose(scores, [0.0, push, email], rtol=1e-5, atol=1e-7)
    assert scores[0] == 0.0


def test_scores_rise_with_good_outcomes_and_fall_with_unsubscribes() -> None:
    weights = FusionWeights(conversion=3.0, engagement=1.0, retention=1.0, unsubscribe=20.0, transform="log")
    base = fuse(one_group(), weights)[1]
    for objective, step, direction in ((0, 0.02, 1), (1, 0.05, 1), (2, 0.05, 1), (3, 0.01, -1)):
        better = PROBABILITIES.copy()
        better[1, objective] += step
        assert np.sign(fuse(one_group(better), weights)[1] - base) == direction


def test_log_transform_is_log1p_over_floor_relative_to_none() -> None:
    weights = FusionWeights(conversion=1.0, engagement=1.0, transform="log", floor=0.1)
    scores = fuse(one_group(), weights)
    expected = np.log1p(0.05 / 0.1) - np.log1p(0.02 / 0.1) + np.log1p(0.20 / 0.1)
    assert scores[1] == pytest.approx(expected, rel=1e-5)


def test_value_scales_conversion_only() -> None:
    value = np.array([1.0, 3.0, 1.0])
    weights = FusionWeights(conversion=1.0)
    scores = fuse(one_group(value=value), weights)
    assert scores[1] == pytest.approx(3.0 * 0.05 - 0.02, rel=1e-5)
    unscaled = fuse(one_group(value=value), FusionWeights(conversion=1.0, use_value=False))
    assert unscaled[1] == pytest.approx(0.05 - 0.02, rel=1e-5)


def test_per_channel_weights_change_only_their_channel() -> None:
    base = FusionWeights(engagement=1.0, unsubscribe=1.0)
    harsh_push = FusionWeights(engagement=1.0, unsubscribe=1.0, per_channel={"push": {"unsubscribe": 100.0}})
    before, after = fuse(one_group(), base), fuse(one_group(), harsh_push)
    assert after[1] == pytest.approx(before[1] - 99 * 0.010, rel=1e-5)
    assert after[2] == before[2] and after[0] == 0.0


def test_product_form_is_weighted_product_minus_none_and_cost() -> None:
    weights = FusionWeights(
        conversion=1.0, engagement=0.5, retention=1.0, unsubscribe=10.0, send_cost=0.001, form="product", floor=0.01
    )
    scores = fuse(one_group(), weights)

    def utility(p: np.ndarray) -> float:
        return (p[0] + 0.01) * (p[1] + 0.01) ** 0.5 * (p[2] + 0.01) * (1 - p[3]) ** 10

    expected = [utility(PROBABILITIES[i]) - utility(PROBABILITIES[0]) - 0.001 for i in (1, 2)]
    np.testing.assert_allclose(scores[1:], expected, rtol=1e-4)
    assert scores[0] == 0.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("unsubscribe", -1.0, "non-negative"),
        ("transform", "sqrt", "transform"),
        ("per_channel", {"sms": {"conversion": 1.0}}, "sms"),
        ("per_channel", {"push": {"clicks": 1.0}}, "clicks"),
    ],
)
def test_bad_weights_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        FusionWeights(**{field: value})


def test_probabilities_outside_unit_interval_are_rejected() -> None:
    bad = PROBABILITIES.copy()
    bad[1, 0] = 1.5
    with pytest.raises(InputError, match=r"within \[0, 1\]"):
        one_group(bad)
