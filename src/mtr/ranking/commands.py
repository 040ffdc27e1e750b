"""`mtr ope ...`: off-policy evaluation experiments checked against truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from mtr.ranking.open_bandit import CAMPAIGNS, TARGETS, OpenBanditOpeConfig, run_open_bandit_ope
from mtr.ranking.pareto import DEFAULT_OBJECTIVES, Direction, SamplerSpec
from mtr.ranking.targets import TargetPolicy


def ope_open_bandit(
    out: Path,
    campaigns: list[str] = list(CAMPAIGNS),  # noqa: B006 (jsonargparse reads the default)
    targets: list[str] = list(TARGETS),  # noqa: B006
    source: Path | None = None,
    reward_prior: float = 200.0,
    folds: int = 2,
) -> None:
    """Estimate the Open Bandit BTS policy's click rate from the uniform-random logs, against BTS's own.

    Writes results.json and README.md into `out` (replaced atomically).

    Args:
        out: output folder.
        campaigns: "all", "men" and/or "women".
        targets: estimates of BTS's action distribution: "frequency", "daily_frequency", "mean_propensity".
        source: the small-dataset folder (default: $MTR_DATA_DIR/open_bandit_dataset_small).
        reward_prior: pseudo-impressions of the position click rate in the DR reward model's shrinkage.
        folds: cross-fitting folds (contiguous in time) of the DR reward model.
    """
    config = OpenBanditOpeConfig(tuple(campaigns), tuple(targets), str(source) if source else None, reward_prior, folds)
    run_open_bandit_ope(out, config)


def ope_simulator(
    events: Path,
    dataset: Path,
    run: Path,
    out: Path,
    policies: list[TargetPolicy],
    checkpoint: str = "last.ckpt",
    first_day: int = 1,
    days: int = 5,
    folds: int = 5,
) -> None:
    """Estimate target policies' rates from a simulated log with IPS / SNIPS / DR, against the oracle's truth.

    Writes results.json and README.md into `out` (replaced atomically).

    Args:
        events: the evaluation log written by `mtr simulate`.
        dataset: the same log built by `mtr build-dataset`.
        run: run folder of a model trained by `mtr fit` (on another log of the same world).
        out: output folder.
        policies: target policies (name, kind logging / uniform / fused, weights, threshold, temperature).
        checkpoint: checkpoint file in the run's checkpoints/.
        first_day: first evaluated day of the log (0-based).
        days: number of evaluated days.
        folds: disjoint user folds over which 95% interval coverage is measured.
    """
    from mtr.ranking.simulator_ope import SimulatorOpeConfig, run_simulator_ope

    config = SimulatorOpeConfig(
        str(events), str(dataset), str(run), checkpoint, first_day, days, folds, tuple(policies)
    )
    run_simulator_ope(out, config)


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
    from mtr.ranking.pareto import ParetoSpec
    from mtr.ranking.pareto_data import arm_problem, cached_problem, file_stamp, simulator_problem, split_rows
    from mtr.ranking.pareto_run import StudyRun, run_pareto

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
