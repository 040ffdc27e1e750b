"""`mtr pareto` end to end: load the problem once, run (or resume) the study, choose, write the outputs.

Outputs in OUT (each file replaced atomically; the default storage OUT/study.db stays for resumes):
front.csv and front.json (the feasible Pareto front, the chosen point and, on the simulator, true
values), trials.csv (every completed trial), front.png and front.html (plots), weights.json (the chosen
`OperatingPoint`, read by `mtr export`) and summary.json (counts, timings, the oracle check).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mtr.io import atomic_write_bytes, write_json
from mtr.ope.estimators import evaluate
from mtr.ope.evaluator import PolicyEvaluator
from mtr.ope.problem import LoggedProblem
from mtr.pareto.spec import ParetoSpec
from mtr.pareto.study import TrialRecord, completed, feasible_front, open_study, run_study, select_point
from mtr.scoring.operating_point import WEIGHTS_FILE, OperatingPoint


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

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.out).resolve() / 'study.db'}"


def run_pareto(problem: LoggedProblem, spec: ParetoSpec, run: StudyRun, provenance: dict) -> dict:
    """Run the study on `problem` and write every output; returns the summary."""
    start = time.perf_counter()
    spec = spec.resolve(problem.inputs.objectives, problem.feedback.reward_names)
    fixed = spec.weights({})
    evaluator = PolicyEvaluator(problem.inputs, problem.feedback, fixed, problem.truth, spec.prune, [spec.estimator])
    setup_s = time.perf_counter() - start
    Path(run.out).mkdir(parents=True, exist_ok=True)
    study = open_study(spec, run.study_name, run.storage_url())
    start = time.perf_counter()
    ran = run_study(study, evaluator, spec, run.n_trials, record_truth=problem.truth is not None)
    study_s = time.perf_counter() - start
    records = completed(study)
    front = feasible_front(records, spec.objectives)
    chosen = select_point(front, spec.objectives, spec.selection)
    where = {"study_name": run.study_name, "storage": run.storage_url()}
    point = operating_point(spec, chosen, problem, {**provenance, **where})
    out = Path(run.out)
    point.save(out / WEIGHTS_FILE)
    decision = evaluator.decide(point.fusion, point.policy)
    summary = {
        "study_name": run.study_name,
        "storage": run.storage_url(),
        "problem": problem.description,
        "candidates_kept_after_pruning": evaluator.kept,
        "candidates": evaluator.inputs.groups.n_candidates,
        "trials_completed": len(records),
        "trials_run_here": ran,
        "trials_feasible": sum(r.feasible for r in records),
        "front_size": len(front),
        "chosen_trial": chosen.number,
        "setup_s": setup_s,
        "study_s": study_s,
        "spec": asdict(spec),
        "chosen": {"params": chosen.params, "estimates": evaluate(problem.feedback, decision).to_dict()},
    }
    if chosen.truth is not None:
        summary["chosen"]["truth"] = chosen.truth
    if run.oracle_check and problem.truth is not None:
        summary["oracle"] = _oracle_summary(evaluator, spec, run.n_trials, front, records)
    write_outputs(out, spec, records, front, chosen, summary)
    return summary


def _oracle_summary(
    evaluator: PolicyEvaluator, spec: ParetoSpec, n_trials: int, front: list[TrialRecord], records: list[TrialRecord]
) -> dict:
    """The oracle check of the found front, or why it was skipped: an objective or constraint without truth
    (the simulator's oracle knows only the outcomes it draws) has no true front to compare with."""
    from mtr.pareto.oracle_check import estimate_errors, oracle_check

    names = list(evaluator.feedback.reward_names)
    judged = {*spec.objectives, *spec.constraints}
    unknown = [name for k, name in enumerate(names) if name in judged and np.isnan(evaluator.truth[:, k]).any()]
    if unknown:
        return {"skipped": f"the oracle has no truth of {unknown}"}
    start = time.perf_counter()
    summary = oracle_check(evaluator, spec, n_trials, front, records)
    summary["front_estimate_errors"] = estimate_errors(front, names)
    summary["seconds"] = time.perf_counter() - start
    return summary


def operating_point(spec: ParetoSpec, chosen: TrialRecord, problem: LoggedProblem, provenance: dict) -> OperatingPoint:
    """The chosen trial as weights.json records it: every objective's weight named, the policy, the estimates."""
    return OperatingPoint(
        fusion=spec.weights(chosen.params).resolved(problem.inputs.objectives),
        policy=spec.policy_config(chosen.params),
        estimates=dict(chosen.estimates),
        provenance={**provenance, "trial": chosen.number, "selection": spec.selection, "estimator": spec.estimator},
    )


def records_frame(records: list[TrialRecord], chosen: TrialRecord, front: list[TrialRecord]) -> pl.DataFrame:
    """One row per record: trial, params, est_* and true_* values, feasible, on_front, chosen."""
    on_front = {r.number for r in front}
    rows = [
        {
            "trial": r.number,
            **r.params,
            **{f"est_{k}": v for k, v in r.estimates.items()},
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
