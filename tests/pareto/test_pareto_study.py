"""The Pareto study end to end on a small synthetic logged problem with known truth."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest

from mtr.errors import InputError
from mtr.objectives import MESSAGING_OBJECTIVES
from mtr.ope.logged_feedback import SEND_VOLUME
from mtr.ope.problem import LoggedProblem
from mtr.pareto.run import StudyRun, run_pareto
from mtr.pareto.spec import ParetoSpec, SamplerSpec
from mtr.pareto.study import TrialRecord, knee_distances, open_study, select_point
from mtr.schema import OBJECTIVES
from mtr.scoring.fusion import FusionInputs
from mtr.scoring.operating_point import OperatingPoint

SPACE = {
    "engagement": {"type": "float", "low": 0.01, "high": 2.0, "log": True},
    "unsubscribe": {"type": "float", "low": 0.01, "high": 5.0, "log": True},
    "send_cost": {"type": "float", "low": 0.001, "high": 0.3, "log": True},
}


def small_problem(make_bandit, n_groups: int = 1500, seed: int = 0) -> LoggedProblem:
    """The ranking tests' synthetic log with 4 rewards named as the objectives; the model is the truth."""
    log = make_bandit(n_groups=n_groups, n_rewards=4, seed=seed)
    feedback = replace(log.feedback.with_send_volume(), reward_names=(*OBJECTIVES, SEND_VOLUME))
    truth = np.column_stack([log.truth, log.groups.is_send()])
    return LoggedProblem(FusionInputs(log.groups, log.truth), feedback, truth, {"opportunities": n_groups})


def spec(**overrides) -> ParetoSpec:
    return ParetoSpec(params=SPACE, fixed={"conversion": 1.0}, sampler=SamplerSpec(population_size=8), **overrides)


def journal(folder: Path) -> str:
    """Optuna's journal file: no database schema to create, so a small study starts at once."""
    return f"journal:{folder / 'study.journal'}"


@pytest.fixture(scope="module")
def problem(make_bandit) -> LoggedProblem:
    return small_problem(make_bandit)


def test_study_writes_every_output_and_weights_load(problem, tmp_path):
    summary = run_pareto(problem, spec(), StudyRun(tmp_path, n_trials=24), {"dataset": "synthetic"})
    for name in ("front.csv", "front.json", "front.png", "front.html", "trials.csv", "weights.json", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "front.png").read_bytes()[:4] == b"\x89PNG"
    assert "plotly" in (tmp_path / "front.html").read_text()[:200_000].lower()
    trials = pl.read_csv(tmp_path / "trials.csv")
    front = pl.read_csv(tmp_path / "front.csv")
    assert trials.height == 24 and front.height == summary["front_size"] >= 1
    chosen = trials.filter(pl.col("chosen"))
    point = OperatingPoint.load(tmp_path / "weights.json")
    # The default rule: the certified trial with the highest lower bound of conversion on the selection part.
    lower = pl.col("est_conversion") - summary["spec"]["z"] * pl.col("se_conversion")
    certified = trials.filter(pl.col("feasible")).with_columns(lower.alias("lower"))
    assert certified.filter(pl.col("chosen"))["lower"][0] == pytest.approx(certified["lower"].max())
    assert summary["certified"] and point.provenance["certified"]  # no constraint: nothing to fail
    assert point.fusion.weights["unsubscribe"] == pytest.approx(chosen["unsubscribe"][0])
    assert point.fusion.weights["conversion"] == 1.0
    # What is written is the held-out re-estimate, with its interval, not the selection part's estimate.
    held_out = summary["chosen"]["bounds"]["conversion"]
    assert point.estimates["conversion"] == pytest.approx(held_out["value"])
    assert point.estimates["conversion"] != pytest.approx(chosen["est_conversion"][0])
    assert point.provenance["intervals"]["conversion"] == pytest.approx([held_out["low"], held_out["high"]])
    assert point.provenance["trial"] == chosen["trial"][0]
    # A rate's interval stays within [0, 1]: no negative lower bound is ever reported.
    assert all(0.0 <= b["low"] <= b["high"] <= 1.0 for b in summary["chosen"]["bounds"].values())
    oracle = json.loads((tmp_path / "summary.json").read_text())["oracle"]
    assert 0 < oracle["hypervolume_ratio"] <= 1.0


def test_constraints_keep_infeasible_points_out_of_the_choice(problem, tmp_path):
    free = run_pareto(problem, spec(), StudyRun(tmp_path / "free", storage=journal(tmp_path), n_trials=16), {})
    best_unsubscribe = free["chosen"]["estimates"]["unsubscribe"]["dr"]["value"]
    cap = 0.9 * best_unsubscribe  # the unconstrained choice breaks this budget
    capped_spec = spec(constraints={"unsubscribe": cap})
    capped = run_pareto(problem, capped_spec, StudyRun(tmp_path / "cap", "capped", journal(tmp_path), 16), {})
    trials = pl.read_csv(tmp_path / "cap" / "trials.csv")
    upper = trials["est_unsubscribe"] + capped["spec"]["z"] * trials["se_unsubscribe"]
    assert ((upper <= cap) == trials["feasible"]).all()  # certified exactly when the upper bound is within budget
    if capped["certified"]:
        assert trials.filter(pl.col("chosen"))["feasible"][0]
        assert capped["chosen"]["bounds"]["unsubscribe"]["high"] <= cap
    else:  # a result, with the data that would certify the closest trial
        assert capped["chosen"]["operating_point"] == "send nothing"
        assert capped["opportunities_needed"] > problem.inputs.groups.n_groups


def test_a_retention_floor_keeps_eroding_points_out_of_the_choice(problem, tmp_path):
    free = run_pareto(problem, spec(), StudyRun(tmp_path / "free", storage=journal(tmp_path), n_trials=16), {})
    trials = pl.read_csv(tmp_path / "free" / "trials.csv")
    lower = trials["est_retention"] - free["spec"]["z"] * trials["se_retention"]
    floor = float(lower.median())  # about half of the trials' lower bounds fall below it
    guarded_spec = spec(constraints={"retention": {"min": floor}})
    guarded = run_pareto(problem, guarded_spec, StudyRun(tmp_path / "floor", "floor", journal(tmp_path), 16), {})
    trials = pl.read_csv(tmp_path / "floor" / "trials.csv")
    lower = trials["est_retention"] - guarded["spec"]["z"] * trials["se_retention"]
    assert ((lower >= floor) == trials["feasible"]).all()  # certified exactly when the lower bound clears the floor
    assert 0 < trials["feasible"].sum() < trials.height
    if guarded["certified"]:
        assert guarded["chosen"]["bounds"]["retention"]["low"] >= floor
    assert free["chosen"]["bounds"]["retention"]["low"] != guarded["chosen"]["bounds"]["retention"]["low"]


def test_rerun_resumes_the_same_study(problem, tmp_path):
    first = run_pareto(problem, spec(), StudyRun(tmp_path, "s", journal(tmp_path), 10, oracle_check=False), {})
    again = run_pareto(problem, spec(), StudyRun(tmp_path, "s", journal(tmp_path), 16, oracle_check=False), {})
    assert (first["trials_run_here"], first["trials_completed"]) == (10, 10)
    assert (again["trials_run_here"], again["trials_completed"]) == (6, 16)
    flipped = spec(objectives={"conversion": "maximize", "unsubscribe": "maximize"})
    with pytest.raises(InputError, match="directions"):
        open_study(flipped.resolve(MESSAGING_OBJECTIVES, problem.feedback.reward_names), "s", journal(tmp_path))
    # Trials scored on other users or by another estimator must not join the study.
    for field, value in (("holdout", 0.3), ("estimator", "snips")):
        other = spec(**{field: value}).resolve(MESSAGING_OBJECTIVES, problem.feedback.reward_names)
        with pytest.raises(InputError, match=f"{field}: study 's' was run with"):
            open_study(other, "s", journal(tmp_path))


# A worker process: the benchmark's synthetic problem (scripts/ is the working directory), one shared study.
WORKER = """
import sys
import time
from dataclasses import replace
from pathlib import Path
from bench_ranking import synthetic
from mtr.ope.logged_feedback import SEND_VOLUME
from mtr.pareto.spec import ParetoSpec, SamplerSpec
from mtr.pareto.study import open_study, run_study
from mtr.ope.evaluator import PolicyEvaluator
from mtr.schema import OBJECTIVES
inputs, feedback = synthetic(300, 4)
feedback = replace(feedback, reward_names=(*OBJECTIVES, SEND_VOLUME))
space = {"engagement": {"type": "float", "low": 0.01, "high": 2.0}}
space["send_cost"] = {"type": "float", "low": 0.0, "high": 0.3}
spec = ParetoSpec(params=space, fixed={"conversion": 1.0}, sampler=SamplerSpec(name="random", seed=None))
spec = spec.resolve(inputs.objectives, feedback.reward_names)
study = open_study(spec, "shared", sys.argv[1])
evaluator = PolicyEvaluator(inputs, feedback)
# Start together: a worker that imports faster could otherwise run all 30 trials before the other begins.
Path(sys.argv[2], sys.argv[3]).touch()
deadline = time.monotonic() + 60
while len(list(Path(sys.argv[2]).iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
print(run_study(study, evaluator, spec, 30))
"""


def test_two_processes_share_one_sqlite_study(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    scripts = Path(__file__).resolve().parents[2] / "scripts"
    ready = tmp_path / "ready"
    ready.mkdir()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, storage, str(ready), str(i)], cwd=scripts, stdout=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    ran = [int(w.communicate(timeout=120)[0].strip().splitlines()[-1]) for w in workers]
    study = optuna.load_study(study_name="shared", storage=storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert min(ran) > 0  # both worked on it
    assert 30 <= len(complete) <= 31 and sum(ran) == len(study.trials)  # one target, at most one trial of overshoot


def test_knee_is_the_front_point_closest_to_utopia():
    # (conversion up, unsubscribe down): the extremes (1, 1) and (3, 5) and the knee (2.6, 1.6).
    front = [
        TrialRecord(0, {}, {"conversion": 1.0, "unsubscribe": 1.0}, None, True),
        TrialRecord(1, {}, {"conversion": 2.6, "unsubscribe": 1.6}, None, True),
        TrialRecord(2, {}, {"conversion": 3.0, "unsubscribe": 5.0}, None, True),
    ]
    objectives = {"conversion": "maximize", "unsubscribe": "minimize"}
    assert select_point(front, objectives, "knee").number == 1
    assert select_point(front, objectives, "max_conversion").number == 2
    np.testing.assert_allclose(knee_distances(np.array([[0.0, 1.0], [1.0, 0.0]])), [1.0, 1.0])
    with pytest.raises(InputError, match="no feasible trial"):
        select_point([], objectives, "knee")


def test_bad_spec_names_the_field():
    rewards = (*OBJECTIVES, SEND_VOLUME)
    with pytest.raises(InputError, match="params.transform"):
        ParetoSpec(params={"transform": {"type": "float", "low": 0.1, "high": 1.0}})
    with pytest.raises(InputError, match="fixed"):
        ParetoSpec(params=SPACE, fixed={"conversion": 1.0, "engagement": 1.0})
    with pytest.raises(InputError, match="policy"):
        ParetoSpec(params=SPACE, fixed={"temperature": 0.1})
    with pytest.raises(InputError, match=r"params: \['clicks'\] are neither objectives"):
        ParetoSpec(params={"clicks": SPACE["engagement"]}).resolve(MESSAGING_OBJECTIVES, rewards)
    with pytest.raises(InputError, match="constraints"):
        spec(constraints={"clicks": 0.1}).resolve(MESSAGING_OBJECTIVES, rewards)
    with pytest.raises(InputError, match="estimator"):
        spec(estimator="magic")
    with pytest.raises(InputError, match="'max_send_volume' needs 'send_volume'"):
        spec(selection="max_send_volume").resolve(MESSAGING_OBJECTIVES, rewards)


def test_objectives_and_selection_default_to_the_objective_table():
    rewards = (*OBJECTIVES, SEND_VOLUME)
    resolved = spec().resolve(MESSAGING_OBJECTIVES, rewards)
    assert resolved.objectives == {o.name: o.direction for o in MESSAGING_OBJECTIVES}
    assert resolved.objectives["unsubscribe"] == "minimize" and resolved.selection == "max_conversion"
    # An explicit order does not move the default rule off the table's first benefit.
    explicit = spec(objectives={"engagement": "maximize", "conversion": "maximize", "send_volume": "minimize"})
    assert explicit.resolve(MESSAGING_OBJECTIVES, rewards).selection == "max_conversion"


def test_scored_problem_is_cached_and_rebuilt_when_its_inputs_change(problem, tmp_path):
    from mtr.ope.problem import cached_problem

    builds = []

    def build() -> LoggedProblem:
        builds.append(1)
        return problem

    cache = tmp_path / "problem.npz"
    cached_problem(cache, {"model": 1}, build)
    loaded = cached_problem(cache, {"model": 1}, build)
    assert len(builds) == 1
    np.testing.assert_array_equal(loaded.inputs.probabilities, problem.inputs.probabilities)
    np.testing.assert_array_equal(loaded.feedback.logged_index, problem.feedback.logged_index)
    np.testing.assert_array_equal(loaded.truth, problem.truth)
    assert loaded.feedback.reward_names == problem.feedback.reward_names
    cached_problem(cache, {"model": 2}, build)
    assert len(builds) == 2


def test_an_objective_without_labels_is_named_not_reported_as_infeasible(problem, tmp_path):
    unlabelled = replace(problem, feedback=replace(problem.feedback, mask=problem.feedback.mask.copy()))
    unlabelled.feedback.mask[:, OBJECTIVES.index("retention")] = False  # e.g. a split whose retention is immature
    with pytest.raises(InputError, match=r"objectives: \['retention'\] have no logged label"):
        run_pareto(unlabelled, spec(), StudyRun(tmp_path, n_trials=4), {})
    assert not (tmp_path / "summary.json").exists()


def test_a_budget_of_zero_is_met_only_by_policies_that_surely_cause_no_event(problem, tmp_path):
    """A negative DR estimate once made a zero budget look met; bounds of a rate stay in [0, 1], so only a policy
    whose upper bound is 0 (one that sends nothing) is certified, and the run writes every output once."""
    summary = run_pareto(problem, spec(constraints={"unsubscribe": 0.0}), StudyRun(tmp_path, n_trials=16), {})
    trials = pl.read_csv(tmp_path / "trials.csv")
    upper = (trials["est_unsubscribe"] + summary["spec"]["z"] * trials["se_unsubscribe"]).clip(0.0, 1.0)
    assert ((upper <= 0.0) == trials["feasible"]).all()
    point = OperatingPoint.load(tmp_path / "weights.json")
    assert summary["chosen"]["bounds"]["unsubscribe"]["high"] == 0.0 or not summary["certified"]
    assert point.provenance["certified"] == summary["certified"]
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "front.png").is_file()
