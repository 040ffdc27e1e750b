"""`mtr pareto`: tune fusion weights on the Pareto front of off-policy estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mtr.ope.estimators import Z_95
from mtr.pareto.limits import Limits
from mtr.pareto.spec import Direction, SamplerSpec


def pareto(
    out: Path,
    run: Path | list[Path],
    dataset: Path,
    params: dict[str, dict[str, Any]],
    events: Path | None = None,
    candidates: Literal["auto", "log", "simulator", "arms"] = "auto",
    split: str = "validation",
    checkpoint: str = "last.ckpt",
    fixed: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
    objectives: dict[str, Direction] | None = None,
    constraints: dict[str, float | dict[str, float]] | None = None,
    estimator: str = "dros",
    selection: str = "",
    sampler: SamplerSpec = SamplerSpec(),  # noqa: B008 (frozen dataclass)
    prune: bool = True,
    holdout: float = 0.5,
    z: float = Z_95,
    split_seed: int = 0,
    study_name: str = "pareto",
    storage: str | None = None,
    n_trials: int = 80,
    oracle_check: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Tune fusion weights, send cost and the policy on the Pareto front of off-policy estimates; write weights.json.

    Re-run with the same study name and storage to resume (n_trials is the study's total), or run several
    processes on one storage (SQLite file, database URL or journal:PATH) to share the trials. The fields
    are those of `mtr.pareto.spec.ParetoSpec` (objectives, constraints, estimator, selection, sampler,
    prune, holdout, z, split_seed: see there), plus:

    Args:
        out: output folder: front.csv/json/png/html, trials.csv, weights.json, summary.json (and study.db, the
            default storage, and problem.npz, the scored candidates, reused by re-runs).
        run: run folder of the model trained by `mtr fit` (config.yaml, checkpoints/), or the list of the fold
            models of a cross-fit (runs fitted with `data.user_folds`, `mtr.data.folds`): each judged on the
            users it never saw, so that `split` may take the training days too ("train,validation").
        dataset: the dataset folder whose `split` rows are the logged opportunities evaluated.
        params: search space: objective weights, send_cost, threshold, temperature -> {type: float, low, high, log}.
        events: the event log the dataset was built from; where it is a simulation, its oracle gives the truth of
            every candidate (and the "simulator" candidates).
        candidates: what the study may choose among at each decision: "log" (the log's candidate table, kept by
            `mtr build-dataset` in the dataset folder), "simulator" (the oracle's eligible actions: the same set),
            "arms" (every value of the action column at every row: randomised experiments only), or "auto":
            the log's table where the dataset has one, else the simulator's with `events`, else arms.
        split: the split(s) evaluated, comma-separated (validation by default: model selection never looks at
            test; a run trained on every user may not be judged on train).
        checkpoint: checkpoint file in each run's checkpoints/, "best" (the one best-*.ckpt `mtr fit` selected on
            validation) or a path (one run).
        fixed: FusionWeights fields fixed in every trial, e.g. {conversion: 1.0}.
        policy: fixed policy fields, e.g. {temperature: 0.05} for a softmax policy, or {threshold: 0.01}.
        study_name: the Optuna study.
        storage: SQLAlchemy URL or journal:PATH; default sqlite:///OUT/study.db.
        n_trials: the study's total target of trials.
        oracle_check: on the simulator, also search on the truth and report the hypervolume ratio.
        overwrite: write into `out` even when it is not an earlier study's folder (never into an input).
    """
    from mtr.io import check_output_dir
    from mtr.ope.problem import load_problem
    from mtr.pareto.run import StudyRun, run_pareto
    from mtr.pareto.spec import ParetoSpec

    choices = (objectives or {}, constraints or {}, estimator, selection, sampler, prune)
    spec = ParetoSpec(params, fixed or {}, policy or {}, *choices, holdout=holdout, z=z, split_seed=split_seed)
    study_run = StudyRun(out, study_name, storage, n_trials, oracle_check)  # its fields checked before any work
    runs = [str(r) for r in run] if isinstance(run, list) else str(run)
    check_output_dir(out, "pareto", overwrite, [*(run if isinstance(run, list) else [run]), dataset, events])
    provenance = {"run": runs, "checkpoint": checkpoint, "dataset": str(dataset), "split": split}
    problem = load_problem(Path(out), provenance, events, candidates, command="pareto")
    summary = run_pareto(problem, spec, study_run, provenance)
    print_summary(summary, Path(out))
    return summary


def print_summary(summary: dict[str, Any], out: Path) -> None:
    """The study's counts, the operating point with its held-out estimate, interval and truth per reward, the
    verdict, the oracle checks and where the outputs are."""
    spec, chosen = summary["spec"], summary["chosen"]
    parts = summary["opportunities"]
    counts = f"{summary['trials_completed']} trials, {summary['trials_feasible']} certified"
    print(f"study '{summary['study_name']}': {counts}")
    print(f"  selection on {parts['selection']:,} opportunities, re-estimate on {parts['held_out']:,} held-out ones")
    print(f"operating point: {chosen['operating_point']} ({spec['selection']}): {summary['verdict']}")
    if not summary["certified"]:
        needed = summary["opportunities_needed"]
        more = "no amount of data" if needed is None or needed == float("inf") else f"about {needed:,.0f} opportunities"
        print(f"  sending nothing: no estimate is needed to know it breaks no budget; certifying would need {more}")
    truth = chosen.get("truth_held_out") or chosen.get("truth") or {}
    label = "; truth on the same users" if truth else ""
    print(f"  held-out {spec['estimator']} estimate [estimate -/+ {spec['z']:.2f} SE]{label}")
    limits = Limits.parse(spec["constraints"])
    for name, bound in chosen["bounds"].items():
        true = f"; truth {truth[name]:.5f}" if name in truth else ""
        print(f"  {name}: {bound['value']:.5f} [{bound['low']:.5f}, {bound['high']:.5f}]{limits.describe(name)}{true}")
    oracle = summary.get("oracle", {})
    if "hypervolume_ratio" in oracle:
        print(f"oracle check: hypervolume ratio {oracle['hypervolume_ratio']:.3f} (goal >= 0.95, scaled on this run)")
    if "fixed" in oracle:
        print_yardstick(oracle["fixed"])
    elif "skipped" in oracle:
        print(f"oracle check skipped: {oracle['skipped']}")
    print(f"weights: {out / 'weights.json'}; front plot: {out / 'front.png'} and front.html")


def print_yardstick(fixed: dict[str, Any]) -> None:
    """The fixed yardstick (`mtr.pareto.yardstick`): truly feasible or not, regrets and the fixed-box volumes."""
    feasible = "truly within" if fixed["chosen_truly_feasible"] else "BREAKS in truth"
    print(f"fixed yardstick: the operating point is {feasible} the budgets")
    if "regret" in fixed:
        r = fixed["regret"]
        print(
            f"  {r['objective']}: truth {r['chosen_truth']:.5f}; oracle {r['oracle_model_scores']:.5f} with the model's"
            f" scores, {r['oracle_true_scores']:.5f} with true ones: selection regret {r['selection_regret']:.5f},"
            f" model regret {r['model_regret']:.5f}"
        )
    print(
        f"  fixed-box hypervolume: operating point {fixed['chosen_box_hypervolume']:.3f}, certified front"
        f" {fixed['front_box_hypervolume']:.3f}, oracle optima {fixed['oracle_box_hypervolume']:.3f}"
    )
