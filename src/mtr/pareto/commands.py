"""`mtr pareto`: tune fusion weights on the Pareto front of off-policy estimates."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mtr.pareto.study import DEFAULT_OBJECTIVES, Direction, SamplerSpec


def pareto(
    out: Path,
    run: Path,
    dataset: Path,
    params: dict[str, dict[str, Any]],
    events: Path | None = None,
    split: str = "validation",
    checkpoint: str = "last.ckpt",
    fixed: dict[str, Any] | None = None,
    objectives: dict[str, Direction] | None = None,
    constraints: dict[str, float] | None = None,
    estimator: Literal["dr", "snips", "ips"] = "dr",
    selection: Literal["max_conversion", "knee"] = "max_conversion",
    sampler: SamplerSpec = SamplerSpec(),  # noqa: B008 (frozen dataclass)
    prune: bool = True,
    study_name: str = "pareto",
    storage: str | None = None,
    n_trials: int = 80,
    oracle_check: bool = True,
) -> dict[str, Any]:
    """Tune fusion weights, threshold and send cost on the Pareto front of off-policy estimates; write weights.json.

    Run it again with the same study name and storage to resume (n_trials is the study's total), or start
    several processes on one storage (SQLite file, database URL or journal:PATH) to share the trials.

    Args:
        out: output folder: front.csv, front.json, front.png, front.html, trials.csv, weights.json, summary.json
            (and study.db, the default storage, and problem.npz, the scored candidates, reused by re-runs).
        run: run folder of the model trained by `mtr fit` (config.yaml, checkpoints/).
        dataset: the dataset folder whose `split` rows are the logged opportunities evaluated.
        params: search space: conversion, engagement, retention, unsubscribe, send_cost or threshold ->
            {type: float, low, high, log}.
        events: the simulator's events folder: candidates are the logging world's eligible actions, and the
            oracle's truth is recorded. Without it, candidates are the arms of the dataset's action column.
        split: the split evaluated (validation by default: model selection never looks at test).
        checkpoint: checkpoint file in the run's checkpoints/.
        fixed: FusionWeights fields fixed in every trial, e.g. {conversion: 1.0}.
        objectives: reward -> maximize/minimize (default: conversion, engagement, retention up; unsubscribe down).
        constraints: reward -> largest allowed estimate per opportunity, e.g. {unsubscribe: 0.001, send_volume: 0.5}.
        estimator: off-policy estimator of the objectives: dr, snips or ips.
        selection: max_conversion (the feasible trial with the most conversions) or knee (closest to utopia).
        sampler: nsga2 (default), tpe or random, with population size and seed.
        prune: drop dominated candidates once (exact for the deterministic policy).
        study_name: the Optuna study.
        storage: SQLAlchemy URL or journal:PATH; default sqlite:///OUT/study.db.
        n_trials: the study's total target of trials.
        oracle_check: on the simulator, also search on the truth and report the hypervolume ratio.
    """
    from mtr.ope.problem import arm_problem, cached_problem, file_stamp, simulator_problem, split_rows
    from mtr.pareto.run import StudyRun, run_pareto
    from mtr.pareto.study import ParetoSpec

    spec = ParetoSpec(
        params=params,
        fixed=fixed or {},
        objectives=objectives or dict(DEFAULT_OBJECTIVES),
        constraints=constraints or {},
        estimator=estimator,
        selection=selection,
        sampler=sampler,
        prune=prune,
    )
    provenance = {"run": str(run), "checkpoint": checkpoint, "dataset": str(dataset), "split": split}
    checkpoint_path = Path(checkpoint) if Path(checkpoint).exists() else Path(run) / "checkpoints" / checkpoint
    key = {
        **provenance,
        "events": str(events),
        "model": file_stamp(checkpoint_path) if checkpoint_path.exists() else None,
    }
    key["rows"] = file_stamp(split_rows(dataset, split)[1].split_path(dataset, split))
    Path(out).mkdir(parents=True, exist_ok=True)
    problem = cached_problem(
        Path(out) / "problem.npz",
        key,
        lambda: (
            simulator_problem(run, dataset, events, split, checkpoint)
            if events is not None
            else arm_problem(run, dataset, split, checkpoint)
        ),
    )
    summary = run_pareto(problem, spec, StudyRun(out, study_name, storage, n_trials, oracle_check), provenance)
    chosen = summary["chosen"]
    print(f"study '{study_name}': {summary['trials_completed']} trials, front of {summary['front_size']}")
    print(f"chosen trial {summary['chosen_trial']} ({selection}): {chosen['params']}")
    print("  estimates: " + ", ".join(f"{k} {v[estimator]['value']:.5f}" for k, v in chosen["estimates"].items()))
    if "oracle" in summary:
        print(f"oracle check: hypervolume ratio {summary['oracle']['hypervolume_ratio']:.3f} (goal >= 0.95)")
    print(f"weights: {Path(out) / 'weights.json'}; front plot: {Path(out) / 'front.png'} and front.html")
    return summary
