"""Pareto studies beyond the deterministic messaging default: softmax policies, a registered estimator, and an
objective table of another business."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from mtr.errors import InputError
from mtr.objectives import Objective
from mtr.ope.estimators import ESTIMATORS, Estimator, evaluate, register
from mtr.ope.logged_feedback import SEND_VOLUME
from mtr.ope.problem import LoggedProblem
from mtr.pareto.certify import holdout_rows, part_feedback
from mtr.pareto.run import StudyRun, run_pareto
from mtr.pareto.spec import ParetoSpec, SamplerSpec
from mtr.schema import OBJECTIVES
from mtr.scoring.fusion import FusionInputs, fuse
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import decide

SPACE = {
    "engagement": {"type": "float", "low": 0.01, "high": 2.0, "log": True},
    "unsubscribe": {"type": "float", "low": 0.01, "high": 5.0, "log": True},
    "send_cost": {"type": "float", "low": 0.001, "high": 0.3, "log": True},
}
TEMPERATURE = {"type": "float", "low": 0.02, "high": 0.5, "log": True}


@pytest.fixture(scope="module")
def problem(make_bandit) -> LoggedProblem:
    """The synthetic log with rewards named as the messaging objectives; the model is the truth."""
    log = make_bandit(n_groups=1500, n_rewards=4, seed=4)
    feedback = replace(log.feedback.with_send_volume(), reward_names=(*OBJECTIVES, SEND_VOLUME))
    truth = np.column_stack([log.truth, log.groups.is_send()])
    return LoggedProblem(FusionInputs(log.groups, log.truth), feedback, truth, {"opportunities": 1500})


def study(tmp_path, problem: LoggedProblem, n_trials: int = 12, **overrides) -> tuple[dict, OperatingPoint]:
    spec = ParetoSpec(
        **{"params": SPACE, "fixed": {"conversion": 1.0}, "sampler": SamplerSpec(population_size=6), **overrides}
    )
    run = StudyRun(tmp_path, storage=f"journal:{tmp_path / 'study.journal'}", n_trials=n_trials, oracle_check=False)
    return run_pareto(problem, spec, run, {}), OperatingPoint.load(tmp_path / "weights.json")


@pytest.mark.parametrize(
    ("policy", "params"), [({"temperature": 0.05}, SPACE), ({}, {**SPACE, "temperature": TEMPERATURE})]
)
def test_a_softmax_study_records_its_temperature_and_its_estimates_are_the_ope_of_that_policy(
    problem, tmp_path, policy, params
):
    summary, point = study(tmp_path, problem, policy=policy, params=params)
    chosen = pl.read_csv(tmp_path / "trials.csv").filter(pl.col("chosen"))
    expected = policy.get("temperature") or chosen["temperature"][0]
    assert point.policy.temperature == pytest.approx(expected)
    decision = decide(problem.inputs.groups, fuse(problem.inputs, point.fusion), point.policy)
    assert np.mean(problem.inputs.groups.group_max(decision.probabilities) < 0.99) > 0.1  # really stochastic
    # What is written is the re-estimate on the held-out users, never the rows the study selected on.
    held = holdout_rows(problem.inputs.groups.user, summary["spec"]["holdout"], summary["spec"]["split_seed"])
    result = evaluate(part_feedback(problem.feedback, held), decision)
    estimator = summary["spec"]["estimator"]  # the study's estimator (DRos by default)
    for reward in problem.feedback.reward_names:
        assert point.estimates[reward] == pytest.approx(result.value(reward, estimator), rel=1e-9)
        # The study's truth is the policy's expected true reward; DR (with the truth as reward model) is close.
        truth = summary["chosen"]["truth"][reward]
        per_row = decision.expectation(problem.truth)[:, problem.feedback.reward_names.index(reward)]
        assert truth == pytest.approx(per_row.mean(), rel=1e-9)
        # The held-out estimate's own target: the truth on the held-out users only.
        assert summary["chosen"]["truth_held_out"][reward] == pytest.approx(per_row[held].mean(), rel=1e-9)
        assert abs(result.value(reward, "dr") - truth) < 4 * result.estimates[reward]["dr"].standard_error + 1e-9


@pytest.fixture
def clipped_ips() -> Iterator[Estimator]:
    """IPS with importance weights clipped at 2, added through the registry alone."""
    yield register(Estimator("clipped_ips", transform=lambda w: np.minimum(w, 2.0)))
    del ESTIMATORS["clipped_ips"]


def test_a_registered_estimator_runs_in_evaluate_and_in_a_study(problem, tmp_path, clipped_ips):
    summary, point = study(tmp_path, problem, n_trials=10, estimator="clipped_ips")
    assert point.provenance["estimator"] == "clipped_ips"
    fb = problem.feedback
    for policy in (point.policy, replace(point.policy, temperature=0.1)):  # deterministic, then softmax
        decision = decide(problem.inputs.groups, fuse(problem.inputs, point.fusion), policy)
        weight = np.minimum(decision.probability_of(fb.logged_index) / fb.propensity, 2.0)
        result = evaluate(fb, decision)
        for k, reward in enumerate(fb.reward_names):
            assert result.value(reward, "clipped_ips") == pytest.approx(np.mean(weight * fb.rewards[:, k]), rel=1e-9)
    # The written estimates of the chosen point are `evaluate`'s on the held-out users.
    held = holdout_rows(problem.inputs.groups.user, summary["spec"]["holdout"], summary["spec"]["split_seed"])
    decision = decide(problem.inputs.groups, fuse(problem.inputs, point.fusion), point.policy)
    chosen = evaluate(part_feedback(fb, held), decision)
    for reward in fb.reward_names:
        assert point.estimates[reward] == pytest.approx(chosen.value(reward, "clipped_ips"), rel=1e-9)
        assert "clipped_ips" in summary["chosen"]["estimates"][reward]


# Another business: a continuous benefit (purchase value), a binary benefit and a binary cost.
SHOP = (
    Objective("purchase_value", kind="continuous", exists_for_none=True, loss="mse"),
    Objective("visit", exists_for_none=True),
    Objective("complaint", direction="minimize"),
)


def test_a_study_on_another_objective_table_takes_its_objectives_directions_and_unit(make_bandit, tmp_path):
    log = make_bandit(n_groups=1200, n_rewards=3, seed=5)
    predicted = log.truth * np.array([20.0, 1.0, 0.1])  # a value in currency units, probabilities
    names = (*(o.name for o in SHOP), SEND_VOLUME)
    feedback = replace(log.feedback.with_send_volume(), reward_names=names)
    feedback = replace(feedback, predicted=np.column_stack([predicted, log.groups.is_send()]))
    inputs = FusionInputs(log.groups, predicted, objectives=SHOP)
    problem = LoggedProblem(inputs, feedback, None, {"opportunities": 1200})
    params = {"visit": SPACE["engagement"], "complaint": SPACE["unsubscribe"], "send_cost": SPACE["send_cost"]}
    _, point = study(tmp_path, problem, n_trials=10, params=params, fixed={})
    front = json.loads((tmp_path / "front.json").read_text())
    assert front["objectives"] == {"purchase_value": "maximize", "visit": "maximize", "complaint": "minimize"}
    assert front["selection"] == "max_purchase_value"
    assert point.fusion.weights["purchase_value"] == 1.0  # the unit: the first benefit, not searched
    assert set(point.fusion.weights) == {"purchase_value", "visit", "complaint"}
    trials = pl.read_csv(tmp_path / "trials.csv")
    best = trials.filter(pl.col("feasible"))["est_purchase_value"].max()
    assert trials.filter(pl.col("chosen"))["est_purchase_value"][0] == pytest.approx(best)


def test_an_estimator_whose_weight_transform_moves_zero_is_refused() -> None:
    # The vectorised evaluator skips the rows a deterministic policy does not take: their transformed weight must be 0.
    with pytest.raises(InputError, match="'shifted_ips': its weight transform must map 0 to 0"):
        Estimator("shifted_ips", transform=lambda w: w + 0.1)
