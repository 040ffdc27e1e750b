"""`mtr pareto` end to end: load the problem once, run (or resume) the study, choose, write the outputs.

Outputs in OUT (each file replaced atomically; the default storage OUT/study.db stays for resumes):
front.csv and front.json (the certified Pareto front, the chosen point and, on the simulator, true
values), trials.csv (every completed trial, estimates and standard errors on the selection part),
front.png and front.html (plots), weights.json (the operating point, read by `mtr export`: the certified
trial or "send nothing", with its re-estimate on held-out users) and summary.json (counts, timings, the
verdict, the oracle check and the fixed yardstick).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mtr.errors import InputError
from mtr.io import atomic_write_bytes, write_json
from mtr.ope.estimators import Estimate, evaluate
from mtr.ope.evaluator import PolicyEvaluator
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.ope.problem import LoggedProblem
from mtr.pareto.certify import (
    SEND_NOTHING,
    Verdict,
    bounds,
    estimates_on,
    held_out_verdict,
    holdout_rows,
    nothing_certified,
    opportunities_needed,
    part_feedback,
)
from mtr.pareto.spec import ParetoSpec
from mtr.pareto.study import TrialRecord, completed, feasible_front, open_study, run_study, select_point
from mtr.scoring.operating_point import WEIGHTS_FILE, OperatingPoint
from mtr.scoring.policy import PolicyConfig
from mtr.scoring.weights import FusionWeights


@dataclass(frozen=True)
class StudyRun:
    """Where the study lives and how long it runs.

    Args:
        out: output folder.
        study_name: the Optuna study; processes with the same name and storage share it.
        storage: SQLAlchemy URL or journal:PATH; default sqlite:///OUT/study.db.
        n_trials: the study's total target of trials (over all processes and re-runs).
        oracle_check: on the simulator, also run the reference study on the truth and report the hypervolume ratio.
    """

    out: Path
    study_name: str = "pareto"
    storage: str | None = None
    n_trials: int = 80
    oracle_check: bool = True

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise InputError(f"n_trials: a study needs at least 1 trial, got {self.n_trials}")

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.out).resolve() / 'study.db'}"


def run_pareto(problem: LoggedProblem, spec: ParetoSpec, run: StudyRun, provenance: dict) -> dict:
    """Run the study on `problem`, certify its choice on held-out users and write every output; returns the summary."""
    start = time.perf_counter()
    spec = spec.resolve(problem.inputs.objectives, problem.feedback.reward_names)
    check_labelled(problem, spec)
    evaluator = PolicyEvaluator(problem.inputs, problem.feedback, spec.weights({}), problem.truth, spec.prune)
    held = holdout_rows(problem.inputs.groups.user, spec.holdout, spec.split_seed)
    selection_part, held_part = part_feedback(problem.feedback, ~held), part_feedback(problem.feedback, held)
    setup_s = time.perf_counter() - start
    Path(run.out).mkdir(parents=True, exist_ok=True)
    study = open_study(spec, run.study_name, run.storage_url())
    start = time.perf_counter()
    ran = run_study(study, evaluator, spec, run.n_trials, problem.truth is not None, estimate_on=selection_part)
    study_s = time.perf_counter() - start
    records = completed(study)
    front = feasible_front(records, spec.objectives)
    chosen, verdict, re_estimate = certified_choice(records, evaluator, spec, held_part, held)
    weights, policy = operating_policy(spec, chosen, verdict, problem)
    decision = evaluator.decide(weights, policy)
    if not verdict.certified:  # the operating point is "send nothing": its own estimate on the held-out users
        re_estimate = estimates_on(held_part, decision, spec.estimator)
    point = operating_point(spec, chosen, verdict, weights, policy, re_estimate, provenance, run)
    out = Path(run.out)
    point.save(out / WEIGHTS_FILE)
    summary = {
        "study_name": run.study_name,
        "storage": run.storage_url(),
        "problem": problem.description,
        "candidates_kept_after_pruning": evaluator.kept,
        "candidates": evaluator.inputs.groups.n_candidates,
        "opportunities": {"selection": int((~held).sum()), "held_out": int(held.sum())},
        "trials_completed": len(records),
        "trials_run_here": ran,
        "trials_feasible": sum(r.feasible for r in records),
        "front_size": len(front),
        "chosen_trial": chosen.number,
        "certified": verdict.certified,
        "verdict": verdict.reason,
        "opportunities_needed": verdict.opportunities_needed,
        "setup_s": setup_s,
        "study_s": study_s,
        "spec": asdict(spec),
        "chosen": {
            "operating_point": f"trial {chosen.number}" if verdict.certified else "send nothing",
            "params": chosen.params if verdict.certified else {},
            "estimates_on": "held-out users",
            "estimates": evaluate(held_part, decision).to_dict(),
            "bounds": interval_table(re_estimate, spec.z),
        },
    }
    summary["chosen_on_selection_part"] = {"trial": chosen.number, "bounds": interval_table(_estimates(chosen), spec.z)}
    if problem.truth is not None:
        names = problem.feedback.reward_names
        summary["chosen"]["truth"] = dict(zip(names, evaluator.true_value(decision).tolist(), strict=True))
        # The held-out estimate's own target: the policy's true value on the held-out users' opportunities.
        held_truth = evaluator.true_value(decision, within=held)
        summary["chosen"]["truth_held_out"] = dict(zip(names, held_truth.tolist(), strict=True))
    if run.oracle_check and problem.truth is not None:
        summary["oracle"] = _oracle_summary(evaluator, spec, run.n_trials, front, records, summary["chosen"]["truth"])
    write_outputs(out, spec, records, front, chosen, summary)
    return summary


def check_labelled(problem: LoggedProblem, spec: ParetoSpec) -> None:
    """Every objective and limit of the study has logged labels to estimate it from, or the study names it (a
    split whose labels have not matured, a dataset without that outcome) instead of failing on 0 / 0."""
    feedback = problem.feedback
    judged = [*spec.objectives, *spec.limits.rewards]
    counts = dict(zip(feedback.reward_names, feedback.mask.sum(axis=0).tolist(), strict=True))
    empty = [name for name in dict.fromkeys(judged) if counts.get(name, 0) == 0]
    if empty:
        where = problem.description.get("split", "the evaluated rows")
        raise InputError(
            f"objectives: {empty} have no logged label in {where} (immature, or absent from the data): "
            "no estimate can be made; evaluate a split whose labels have matured, or leave them out"
        )


def certified_choice(
    records: list[TrialRecord],
    evaluator: PolicyEvaluator,
    spec: ParetoSpec,
    held_part: LoggedFeedback,
    held: np.ndarray,
) -> tuple[TrialRecord, Verdict, dict[str, Estimate] | None]:
    """The trial chosen among those certified on the selection part, the verdict of its re-estimate on held-out
    users (`mtr.pareto.certify`) and that re-estimate; with none certified, the trial closest to it, why not,
    and no re-estimate."""
    if not records:
        raise InputError("pareto: no trial completed (every estimate was undefined); widen the search space")
    certified = [r for r in records if r.feasible]
    share = float(held.mean())
    if not certified:
        n = float((~held).sum())
        needed = [opportunities_needed(_estimates(r), spec.limits, spec.z, n) / (1.0 - share) for r in records]
        closest = int(np.argmin(needed))
        return records[closest], nothing_certified(records[closest].number, needed[closest]), None
    chosen = select_point(certified, spec.objectives, spec.selection, spec.z)
    decision = evaluator.decide(spec.weights(chosen.params), spec.policy_config(chosen.params))
    re_estimate = estimates_on(held_part, decision, spec.estimator)
    verdict = held_out_verdict(chosen.number, re_estimate, spec.limits, spec.z, float(held.sum()), share)
    return chosen, verdict, re_estimate


def _estimates(record: TrialRecord) -> dict[str, Estimate]:
    return {name: Estimate(value, record.standard_errors[name]) for name, value in record.estimates.items()}


def interval_table(estimates: dict[str, Estimate], z: float) -> dict[str, dict[str, float]]:
    """Per reward: estimate, standard error and the interval (estimate -/+ z SE) that certification uses."""
    out = {}
    for name, estimate in estimates.items():
        low, high = bounds(estimate, z)
        out[name] = {"value": estimate.value, "standard_error": estimate.standard_error, "low": low, "high": high}
    return out


def _oracle_summary(
    evaluator: PolicyEvaluator,
    spec: ParetoSpec,
    n_trials: int,
    front: list[TrialRecord],
    records: list[TrialRecord],
    chosen_truth: dict[str, float],
) -> dict:
    """The oracle check of the found front and the fixed yardstick, or why they were skipped: an objective or
    constraint without truth (the simulator's oracle knows only the outcomes it draws) has no true front."""
    from mtr.pareto.oracle_check import estimate_errors, oracle_check
    from mtr.pareto.yardstick import yardstick

    names = list(evaluator.feedback.reward_names)
    judged = {*spec.objectives, *spec.limits.rewards}
    unknown = [name for k, name in enumerate(names) if name in judged and np.isnan(evaluator.truth[:, k]).any()]
    if unknown:
        return {"skipped": f"the oracle has no truth of {unknown}"}
    start = time.perf_counter()
    summary = oracle_check(evaluator, spec, n_trials, front, records)
    if "skipped" in summary:
        return summary
    summary["front_estimate_errors"] = estimate_errors(front, names)
    summary["fixed"] = yardstick(evaluator, spec, n_trials, chosen_truth, [r.truth for r in front if r.truth])
    summary["seconds"] = time.perf_counter() - start
    return summary


def operating_policy(
    spec: ParetoSpec, chosen: TrialRecord, verdict: Verdict, problem: LoggedProblem
) -> tuple[FusionWeights, PolicyConfig]:
    """The operating point's fusion weights (every objective named) and policy: the certified trial's, or
    "send nothing" when none is certified."""
    params = chosen.params if verdict.certified else {}
    policy = spec.policy_config(params) if verdict.certified else SEND_NOTHING
    return spec.weights(params).resolved(problem.inputs.objectives), policy


def operating_point(
    spec: ParetoSpec,
    chosen: TrialRecord,
    verdict: Verdict,
    weights: FusionWeights,
    policy: PolicyConfig,
    re_estimate: dict[str, Estimate],
    provenance: dict,
    run: StudyRun,
) -> OperatingPoint:
    """What weights.json records: the operating policy (`operating_policy`) with its re-estimate on held-out users
    and the study's provenance."""
    point = OperatingPoint(
        fusion=weights,
        policy=policy,
        estimates={name: e.value for name, e in re_estimate.items()},
        provenance={
            **provenance,
            "study_name": run.study_name,
            "storage": run.storage_url(),
            "trial": chosen.number if verdict.certified else None,
            "selection": spec.selection,
            "estimator": spec.estimator,
            "estimates_on": "held-out users",
            "intervals": {name: list(bounds(e, spec.z)) for name, e in re_estimate.items()},
            "certified": verdict.certified,
            "verdict": verdict.reason,
        },
    )
    return point


def records_frame(records: list[TrialRecord], chosen: TrialRecord, front: list[TrialRecord]) -> pl.DataFrame:
    """One row per record: trial, params, est_*, se_* (selection part) and true_* values, feasible (certified),
    on_front, chosen."""
    on_front = {r.number for r in front}
    rows = [
        {
            "trial": r.number,
            **r.params,
            **{f"est_{k}": v for k, v in r.estimates.items()},
            **{f"se_{k}": v for k, v in r.standard_errors.items()},
            **{f"true_{k}": v for k, v in (r.truth or {}).items()},
            "feasible": r.feasible,
            "on_front": r.number in on_front,
            "chosen": r.number == chosen.number,
        }
        for r in records
    ]
    return pl.DataFrame(rows)


def write_outputs(
    out: Path,
    spec: ParetoSpec,
    records: list[TrialRecord],
    front: list[TrialRecord],
    chosen: TrialRecord,
    summary: dict,
) -> None:
    """Every output file except weights.json, each replaced atomically."""
    from mtr.pareto.plot import write_html, write_png

    table = records_frame(records, chosen, front)
    for name, frame in (("trials.csv", table), ("front.csv", table.filter(pl.col("on_front")))):
        atomic_write_bytes(out / name, frame.write_csv().encode())
    write_json(
        out / "front.json",
        {
            "objectives": dict(spec.objectives),
            "constraints": dict(spec.constraints),
            "estimator": spec.estimator,
            "selection": spec.selection,
            "chosen_trial": chosen.number,
            "front": table.filter(pl.col("on_front")).to_dicts(),
        },
    )
    write_png(out / "front.png", records, front, chosen, spec.objectives)
    write_html(out / "front.html", records, front, chosen, spec.objectives)
    write_json(out / "summary.json", summary)
