"""Certified selection and the fixed yardstick: what a user of `mtr pareto` would notice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mtr.errors import InputError
from mtr.ope.estimators import Estimate
from mtr.ope.evaluator import PolicyEvaluator
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.pareto.certify import (
    SEND_NOTHING,
    estimates_on,
    held_out_verdict,
    holdout_rows,
    opportunities_needed,
    part_feedback,
    slacks,
)
from mtr.pareto.hypervolume import as_maximised
from mtr.pareto.limits import Limits
from mtr.pareto.study import TrialRecord, select_point
from mtr.pareto.yardstick import box_volume, fixed_box
from mtr.scoring.fusion import FusionInputs
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.policy import PolicyDecision
from mtr.scoring.weights import FusionWeights

CAP = 0.002
Z = 1.96


def rare_event_log(n_groups: int = 4000, seed: int = 0) -> tuple[LoggedFeedback, PolicyDecision]:
    """One send candidate per opportunity besides "none", logged with propensity 0.02; an unsubscribe has true
    and modelled probability 0.01 per send, and none of the ~80 logged sends drew one (a lucky log)."""
    rng = np.random.default_rng(seed)
    sizes = np.full(n_groups, 2)
    channel = np.tile(np.array([NONE_CODE, 0], dtype=np.int8), n_groups)
    groups = CandidateGroups.build(sizes, channel, user=np.arange(n_groups), day=np.zeros(n_groups))
    sent = rng.random(n_groups) < 0.02
    logged = groups.starts + sent
    propensity = np.where(sent, 0.02, 0.98)
    predicted = np.tile([0.0, 0.01], n_groups)[:, None]
    rewards = np.zeros((n_groups, 1))  # no event: the lucky draw
    mask = np.ones((n_groups, 1), dtype=bool)
    feedback = LoggedFeedback(groups, logged, propensity, rewards, mask, predicted, ("unsubscribe",))
    always_send = PolicyDecision(groups, chosen=groups.starts + 1)  # true value 0.01 per opportunity: 5x the budget
    return feedback, always_send


def test_a_lucky_zero_event_policy_is_not_certified():
    feedback, always_send = rare_event_log()
    found = estimates_on(feedback, always_send, "dr")["unsubscribe"]
    assert found.value < CAP  # the point estimate alone would keep it
    assert slacks({"unsubscribe": found}, Limits.parse({"unsubscribe": CAP}), Z)["max_unsubscribe"] > 0  # its bound not
    # Sending nothing is the fallback and needs no estimate: no send, no unsubscribe.
    nothing = estimates_on(feedback, PolicyDecision(feedback.groups, chosen=feedback.groups.starts), "dr")
    assert nothing["unsubscribe"].value == 0.0


def test_selection_ranks_certified_trials_by_their_lower_bound():
    # Trial 0 has the larger estimate but on few rows; trial 1 is surely better than its lower bound says of 0.
    certified = [
        TrialRecord(
            0, {}, {"conversion": 0.10, "unsubscribe": 0.0}, None, True, {"conversion": 0.04, "unsubscribe": 0}
        ),
        TrialRecord(
            1, {}, {"conversion": 0.08, "unsubscribe": 0.0}, None, True, {"conversion": 0.01, "unsubscribe": 0}
        ),
    ]
    objectives = {"conversion": "maximize", "unsubscribe": "minimize"}
    assert select_point(certified, objectives, "max_conversion", z=0.0).number == 0
    assert select_point(certified, objectives, "max_conversion", z=Z).number == 1


def test_the_split_is_by_user_and_the_re_estimate_never_reads_the_selection_rows():
    feedback, always_send = rare_event_log(n_groups=2000)
    user = np.arange(2000) // 4  # four opportunities per user
    feedback = replace(feedback, groups=replace(feedback.groups, user=user))
    held = holdout_rows(user, 0.5, seed=3)
    assert held.mean() == pytest.approx(0.5)
    assert not set(user[held]) & set(user[~held])  # no user on both sides
    before = estimates_on(part_feedback(feedback, held), always_send, "dr")["unsubscribe"]
    # Rewrite every reward of the selection part: the held-out re-estimate does not move.
    rewritten = replace(feedback, rewards=np.where(held[:, None], feedback.rewards, 1.0))
    after = estimates_on(part_feedback(rewritten, held), always_send, "dr")["unsubscribe"]
    assert (after.value, after.standard_error) == (before.value, before.standard_error)
    assert estimates_on(part_feedback(rewritten, ~held), always_send, "dr")["unsubscribe"].value != before.value
    with pytest.raises(InputError, match="holdout"):
        holdout_rows(np.zeros(10), 0.5, seed=0)  # one user cannot be split


def test_no_certified_point_is_reported_with_its_reason_and_the_data_it_would_need():
    constraints = Limits.parse({"unsubscribe": CAP})
    re_estimate = {"unsubscribe": Estimate(0.0015, 0.0005)}  # upper bound 0.00248 > 0.002
    verdict = held_out_verdict(7, re_estimate, constraints, Z, n_held_out=10_000, share=0.5)
    assert not verdict.certified
    assert "trial 7" in verdict.reason and "unsubscribe upper bound" in verdict.reason
    # (z SE / (cap - estimate))^2 times the held-out opportunities, over the held-out share.
    assert verdict.opportunities_needed == pytest.approx(10_000 * (Z * 0.0005 / 0.0005) ** 2 / 0.5)
    assert opportunities_needed({"unsubscribe": Estimate(0.003, 0.0)}, constraints, Z, 10_000) == np.inf
    assert held_out_verdict(7, {"unsubscribe": Estimate(0.001, 0.0004)}, constraints, Z, 10_000, 0.5).certified


def test_a_retention_guardrail_holds_by_its_lower_bound():
    limits = Limits.parse({"unsubscribe": CAP, "retention": {"min": 0.66}})
    assert (limits.caps, limits.floors) == ({"unsubscribe": CAP}, {"retention": 0.66})
    safe_unsubscribe = Estimate(0.001, 0.0001)
    eroding = {"unsubscribe": safe_unsubscribe, "retention": Estimate(0.67, 0.01)}  # lower bound 0.650 < 0.66
    verdict = held_out_verdict(3, eroding, limits, Z, n_held_out=10_000, share=0.5)
    assert not verdict.certified and "retention lower bound 0.6504 < 0.66" in verdict.reason
    # (z SE / (estimate - floor))^2 times the held-out opportunities, over the held-out share.
    assert verdict.opportunities_needed == pytest.approx(10_000 * (Z * 0.01 / 0.01) ** 2 / 0.5)
    kept = {"unsubscribe": safe_unsubscribe, "retention": Estimate(0.70, 0.01)}
    assert held_out_verdict(3, kept, limits, Z, 10_000, 0.5).certified
    assert limits.hold({"unsubscribe": 0.001, "retention": 0.661}) and not limits.hold(
        {"unsubscribe": 0.001, "retention": 0.659}
    )
    for bad, field in (({"retention": {"least": 0.6}}, "constraints.retention"), ({"retention": {"min": "x"}}, "min")):
        with pytest.raises(InputError, match=field):
            Limits.parse(bad)
    with pytest.raises(InputError, match="min 0.7 is above max 0.6"):
        Limits.parse({"retention": {"min": 0.7, "max": 0.6}})


def test_send_nothing_sends_nothing_on_the_fast_path(make_bandit):
    log = make_bandit(n_groups=300, n_rewards=4, seed=1)
    evaluator = PolicyEvaluator(FusionInputs(log.groups, log.truth), log.feedback)
    decision = evaluator.decide(FusionWeights({"conversion": 1e30}), SEND_NOTHING)  # however a send scores
    np.testing.assert_array_equal(decision.chosen, log.groups.starts)


def test_the_fixed_box_ignores_the_run_and_its_volume_stays_when_trials_are_added():
    objectives = {"conversion": "maximize", "unsubscribe": "minimize"}
    maximise = [True, False]
    payoff = as_maximised(np.array([[0.03, 0.0], [0.05, 0.0019]]), maximise)  # send nothing, the oracle optimum
    box = fixed_box(payoff, objectives, Limits.parse({"unsubscribe": CAP}))
    np.testing.assert_allclose(box, [[0.03, -CAP], [0.05, 0.0]])
    front = as_maximised(np.array([[0.04, 0.001]]), maximise)
    alone = box_volume(front, box)
    assert alone == pytest.approx(0.5 * 0.5)
    # Another trial that the front dominates changes nothing; the box never looks at trials.
    more = np.vstack([front, as_maximised(np.array([[0.035, 0.0015]]), maximise)])
    assert box_volume(more, box) == pytest.approx(alone)
    # A point beyond the ideal is clipped, so the volume is at most 1.
    assert box_volume(as_maximised(np.array([[0.09, 0.0]]), maximise), box) == pytest.approx(1.0)
