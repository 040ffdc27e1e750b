"""`mtr ope evaluate`: what an operating point would do on a log's decisions, off-policy, with intervals.

The same candidates, model scores and logged feedback a Pareto study uses (`mtr.ope.problem.load_problem`: the
log's candidate table, the simulator's, or arms), judged for one `weights.json` by every registered estimator,
next to the logging policy (where the candidates carry its probabilities: its estimates are the logged means)
and "send nothing"; on the simulator each estimate stands beside its truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from mtr.io import write_json
from mtr.ope.estimators import evaluate
from mtr.ope.evaluator import PolicyEvaluator
from mtr.ope.problem import LoggedProblem, load_problem
from mtr.schema import DatasetSchema
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import PolicyDecision

EVALUATION_FILE = "evaluation.json"


def ope_evaluate(
    run: Path | list[Path],
    dataset: Path,
    weights: Path,
    out: Path,
    events: Path | None = None,
    candidates: Literal["auto", "log", "simulator", "arms"] = "auto",
    split: str = "test",
    checkpoint: str = "last.ckpt",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Estimate an operating point's objectives on a log's decisions with every estimator, beside the logging policy
    and sending nothing.

    Args:
        run: the run folder of the model that scores the candidates (or a cross-fit's fold models).
        dataset: the dataset built from the log (its candidates file, where the log has a candidate table).
        weights: the operating point (`weights.json` of `mtr pareto`).
        out: output folder: evaluation.json, and problem.npz (the scored candidates, reused by re-runs).
        events: the event log the dataset was built from; a simulation's oracle gives the truth.
        candidates: "auto", "log", "simulator" or "arms" (as for `mtr pareto`).
        split: the split(s) judged, comma-separated; test by default: the point was chosen on others.
        checkpoint: the checkpoint in each run's checkpoints/, "best", or a path.
        overwrite: write into `out` even when it is not an earlier evaluation's folder (never into an input).
    """
    from mtr.io import check_output_dir

    runs = [str(r) for r in run] if isinstance(run, list) else str(run)
    check_output_dir(out, "ope evaluate", overwrite, [*(run if isinstance(run, list) else [run]), dataset, events])
    schema = DatasetSchema.load(dataset)
    point = OperatingPoint.load(weights, schema.objective_table)
    inputs = {"run": runs, "checkpoint": checkpoint, "dataset": str(dataset), "split": split}
    problem = load_problem(Path(out), inputs, events, candidates, command="ope evaluate")
    report = evaluation(problem, point)
    report |= {"weights": str(weights), "split": split, "problem": problem.description}
    write_json(Path(out) / EVALUATION_FILE, report)
    print_evaluation(report)
    return report


def evaluation(problem: LoggedProblem, point: OperatingPoint) -> dict[str, Any]:
    """Every estimator's estimate with its 95% interval, per objective and send volume, for the operating point,
    the logging policy (where known) and "send nothing", with the truth where the problem has it; and the effective
    sample sizes."""
    evaluator = PolicyEvaluator(problem.inputs, problem.feedback, point.fusion, problem.truth)
    groups = problem.inputs.groups
    policies = {"operating_point": evaluator.decide(point.fusion, point.policy)}
    if problem.logging is not None:
        policies["logging_policy"] = PolicyDecision(groups, probabilities=problem.logging)
    policies["send_nothing"] = PolicyDecision(groups, chosen=groups.starts.copy())
    report: dict[str, Any] = {"opportunities": groups.n_groups, "policies": {}}
    for name, decision in policies.items():
        result = evaluate(problem.feedback, decision)
        by_reward = result.to_dict()
        if problem.truth is not None:
            truth = evaluator.true_value(decision)
            for k, reward in enumerate(problem.feedback.reward_names):
                if np.isfinite(truth[k]):
                    by_reward[reward]["truth"] = float(truth[k])
        sends = decision.expectation(groups.is_send()[:, None].astype(np.float64))[:, 0].mean()
        report["policies"][name] = {"send_share": float(sends), "rewards": by_reward}
    return report


def print_evaluation(report: dict[str, Any]) -> None:
    """Per policy and reward: the truth where known, then each estimator's estimate and 95% interval."""
    print(f"off-policy evaluation on {report['opportunities']:,} decisions ({report['problem'].get('candidates')})")
    for name, policy in report["policies"].items():
        print(f"{name}: sends at {policy['send_share']:.2%} of decisions")
        for reward, estimates in policy["rewards"].items():
            truth = f"truth {estimates['truth']:.5f}" if "truth" in estimates else "no truth outside the simulator"
            print(f"  {reward} ({truth}; effective sample size {estimates['effective_sample_size']:,.0f})")
            for estimator, e in estimates.items():
                if isinstance(e, dict):
                    print(f"    {estimator:<10} {e['value']:.5f} [{e['ci_low']:.5f}, {e['ci_high']:.5f}]")
