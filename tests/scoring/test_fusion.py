"""Fusion: the none-relative convention, hand-computed scores, monotonicity, per-channel weights, product form,
objective tables other than messaging's, and the torch twin against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtr.errors import InputError
from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.scoring.fusion import FusionInputs, TorchFusion, fuse
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.weights import FusionWeights

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
    ("weights", "message"),
    [
        (lambda: FusionWeights(unsubscribe=-1.0), "non-negative"),
        (lambda: FusionWeights(transform="sqrt"), "transform"),
        (lambda: FusionWeights(per_channel={"sms": {"conversion": 1.0}}), "sms"),
        (lambda: FusionWeights(conversion="high"), "'conversion' must be a number"),
        (lambda: FusionWeights(per_channel={"push": {"clicks": 1.0}}).matrix(MESSAGING_OBJECTIVES), "clicks"),
        (lambda: FusionWeights(convresion=1.0).matrix(MESSAGING_OBJECTIVES), "convresion"),
    ],
    ids=["negative", "transform", "channel", "not_a_number", "per_channel_objective", "objective"],
)
def test_bad_weights_name_the_field(weights, message: str) -> None:
    with pytest.raises(InputError, match=message):
        weights()


def test_probabilities_outside_unit_interval_are_rejected() -> None:
    bad = PROBABILITIES.copy()
    bad[1, 0] = 1.5
    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        one_group(bad)


# A table of another business: a continuous benefit (purchase value, scaled by the offer's value), a binary
# benefit that also happens without a send, and a binary cost that does not.
SHOP = (
    Objective("purchase_value", kind="continuous", exists_for_none=True, value_scaled=True, loss="mse"),
    Objective("visit", exists_for_none=True),
    Objective("complaint", direction="minimize"),
)
SHOP_VALUES = np.array([[3.0, 0.2, 0.0], [7.5, 0.5, 0.01], [4.0, 0.3, 0.002]])


def shop_group(values: np.ndarray = SHOP_VALUES, value: np.ndarray | None = None) -> FusionInputs:
    groups = CandidateGroups.build(np.array([3]), np.array([NONE_CODE, PUSH, EMAIL]), np.array([0]), np.array([0]))
    return FusionInputs(groups, values, value, objectives=SHOP)


def test_any_objective_table_fuses_by_its_directions_and_value_scaling() -> None:
    weights = FusionWeights(purchase_value=0.1, visit=1.0, complaint=50.0, send_cost=0.02)
    value = np.array([1.0, 2.0, 1.0])
    scores = fuse(shop_group(value=value), weights)
    push = 0.1 * (2.0 * 7.5 - 3.0) + 1.0 * (0.5 - 0.2) - 50.0 * 0.01 - 0.02  # the cost is subtracted
    email = 0.1 * (4.0 - 3.0) + 1.0 * (0.3 - 0.2) - 50.0 * 0.002 - 0.02
    np.testing.assert_allclose(scores, [0.0, push, email], rtol=1e-5)
    # Continuous predictions are values, not probabilities: they are not held to [0, 1].
    assert shop_group().probabilities.max() == pytest.approx(7.5)


def test_the_first_maximised_objective_is_the_unit_when_no_weight_names_it() -> None:
    assert FusionWeights(visit=2.0).named(SHOP) == {"purchase_value": 1.0, "visit": 2.0, "complaint": 0.0}
    assert FusionWeights().named(MESSAGING_OBJECTIVES)["conversion"] == 1.0
    resolved = FusionWeights(complaint=3.0).resolved(SHOP)
    assert resolved.to_dict()["purchase_value"] == 1.0 and resolved.to_dict()["visit"] == 0.0


def test_product_form_and_log_transform_refuse_a_weighted_continuous_objective() -> None:
    table = (*SHOP[:2], Objective("refund_amount", kind="continuous", direction="minimize", loss="mse"))
    groups = shop_group().groups
    inputs = FusionInputs(groups, SHOP_VALUES, objectives=table)
    with pytest.raises(
        InputError, match=r"product form needs probabilities, and \['purchase_value', 'refund_amount'\]"
    ):
        fuse(inputs, FusionWeights(refund_amount=1.0, form="product"))
    # log1p(v / floor) of a value below -floor is NaN: refused rather than ranked silently.
    with pytest.raises(InputError, match=r"log transform needs probabilities, and \['purchase_value'\]"):
        fuse(shop_group(), FusionWeights(purchase_value=1.0, transform="log"))
    with pytest.raises(InputError, match="refund_amount"):
        TorchFusion(table, FusionWeights(refund_amount=1.0, form="product"))
    assert fuse(inputs, FusionWeights(refund_amount=1.0)).shape == (3,)  # the sum form takes it
    binary_only = FusionWeights(purchase_value=0.0, visit=1.0, form="product")  # weight 0: no factor of a value
    np.testing.assert_allclose(
        fuse(inputs, binary_only), [0.0, (0.5 + 0.01) - (0.2 + 0.01), (0.3 + 0.01) - (0.2 + 0.01)]
    )


# Weights of a table's objectives in table order (cut to its length), and the other settings.
TORCH_CASES = {
    "sum": ((1.0, 0.3, 0.5, 4.0), {"send_cost": 0.01}),
    "log": ((2.0, 1.0, 0.0, 3.0), {"transform": "log", "floor": 0.02}),
    "product": ((1.0, 0.5, 0.2, 3.0), {"form": "product", "send_cost": 0.001}),
    "per_channel": ((2.0, 0.0, 1.0, 1.0), {"per_channel": {"push": {"send_cost": 0.05}}}),
    "no_value": ((1.0, 0.2, 0.0, 0.0), {"use_value": False}),
}


@pytest.mark.parametrize("case", list(TORCH_CASES))
@pytest.mark.parametrize("objectives", [MESSAGING_OBJECTIVES, SHOP], ids=["messaging", "shop"])
def test_torch_fusion_equals_numpy_fusion_on_random_inputs(case: str, objectives) -> None:
    by_position, settings = TORCH_CASES[case]
    names = [o.name for o in objectives]
    if "per_channel" in settings:  # a harsher cost (the table's last objective) on push only
        settings = {"per_channel": {"push": {**settings["per_channel"]["push"], names[-1]: 8.0}}}
    named = dict(zip(names, by_position, strict=False))
    if case in ("log", "product"):  # these need probabilities: continuous objectives get weight 0 (refused otherwise)
        named = {o.name: 0.0 if o.kind == "continuous" else named.get(o.name, 0.0) for o in objectives}
    weights = FusionWeights(named, **settings)
    rng = np.random.default_rng(len(case))
    sizes = rng.integers(1, 6, 300)
    channel = rng.integers(0, NONE_CODE, sizes.sum())
    channel[np.cumsum(sizes) - sizes] = NONE_CODE
    groups = CandidateGroups.build(sizes, channel, np.zeros(sizes.size), np.zeros(sizes.size))
    values = rng.uniform(0, 0.6, (groups.n_candidates, len(objectives))).astype(np.float32)
    values[:, [o.kind == "continuous" for o in objectives]] *= 20  # continuous: values, not probabilities
    value = rng.uniform(0.5, 3.0, groups.n_candidates).astype(np.float32)
    expected = fuse(FusionInputs(groups, values, value, objectives), weights)
    baseline = torch.from_numpy(groups.starts[groups.group_of])
    got = TorchFusion(objectives, weights)(
        torch.from_numpy(values), torch.from_numpy(channel.astype(np.int64)), baseline, torch.from_numpy(value)
    )
    assert np.ptp(expected) > 0.01 and np.all(expected[groups.starts] == 0.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)  # float32 sums of terms up to ~10
