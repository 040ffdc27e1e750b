"""`mtr tune`: an Optuna hyperparameter sweep over `mtr fit`, run by one or several worker processes.

    mtr tune --config configs/tune/sim_mmoe.yaml --n_trials 20 --workers 2 \
        --storage sqlite:///runs/tune.db --study_name sim_mmoe

Run it again with the same study name and storage to resume (or to raise `n_trials`); start it on
other machines with a shared database URL or `journal:PATH` on a shared file system to add workers.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from pathlib import Path
from typing import Any

from mtr.errors import InputError, RunError
from mtr.tuning.worker import PrunerConfig, SamplerConfig, Sweep

# Arguments every trial gets unless the sweep's train_overrides set them.
TRIAL_DEFAULTS = {"wandb": False, "trainer.enable_progress_bar": False, "trainer.enable_model_summary": False}


def tune(
    study_name: str,
    n_trials: int,
    params: dict[str, Any],
    train_configs: list[Path] | None = None,
    train_overrides: dict[str, Any] | None = None,
    storage: str | None = None,
    workers: int = 1,
    root: Path | None = None,
    seed: int = 0,
    sampler: SamplerConfig = SamplerConfig(),  # noqa: B008 (frozen dataclass)
    pruner: PrunerConfig = PrunerConfig(),  # noqa: B008 (frozen dataclass)
    max_failures: int = 3,
    torch_threads: int | None = None,
    dry_run: bool = True,
) -> dict[str, Any]:
    """Search hyperparameters of `mtr fit` to maximise the best validation "val/selection"; returns best.json.

    Writes ROOT/trial_{k}/ (each trial's run folder) and ROOT/summary/ (best.json, trials.csv, replaced
    atomically), and prints the best trial.

    Args:
        study_name: the Optuna study; workers started with the same name and storage share it.
        n_trials: the study's target of finished (complete or pruned) trials, over all workers and restarts.
        params: the search space: dotted `mtr fit` key -> {type: float|int, low, high, log, step} or
            {type: categorical, choices: [...]} (see `mtr.studies.space`).
        train_configs: top-level `mtr fit` configs, each passed as `--config FILE`, e.g. an experiment YAML.
        train_overrides: fixed dotted overrides for every trial, in order, e.g. {"trainer.max_epochs": 5}
            or a group file {"model": "configs/model/mmoe.yaml"}.
        storage: an SQLAlchemy URL or journal:PATH; default sqlite:///ROOT/study.db.
        workers: worker processes started here; they share the study through the storage.
        root: sweep folder; default runs/tune/STUDY_NAME.
        seed: `seed_everything` of every trial (unless train_overrides sets it).
        sampler: the sampler (TPE by default).
        pruner: the pruner (median by default).
        max_failures: a worker stops after this many failed trials in a row.
        torch_threads: torch threads per worker; default: the CPU count shared among the workers.
        dry_run: first check the configs and the space with a one-batch `fast_dev_run` of the first values.
    """
    from mtr.studies.space import parse_space
    from mtr.studies.storage import default_storage

    _check_arguments(study_name, n_trials, workers, train_configs or [])
    root = Path(root) if root is not None else Path("runs/tune") / study_name
    threads = torch_threads if torch_threads is not None else max(1, (os.cpu_count() or 1) // workers)
    sweep = Sweep(
        study_name=study_name,
        storage=storage or default_storage(root),
        n_trials=n_trials,
        root=root,
        params=parse_space(params),
        train_args=_train_args(train_configs or [], train_overrides or {}, seed),
        sampler=sampler,
        pruner=pruner,
        max_failures=max_failures,
        torch_threads=threads,
    )
    if dry_run:
        _dry_run(sweep)
    return run_sweep(sweep, workers)


def _check_arguments(study_name: str, n_trials: int, workers: int, train_configs: list[Path]) -> None:
    if n_trials < 1:
        raise InputError(f"n_trials: must be at least 1, got {n_trials}")
    if workers < 1:
        raise InputError(f"workers: must be at least 1, got {workers}")
    if not study_name:
        raise InputError("study_name: must not be empty")
    for i, config in enumerate(train_configs):
        if not Path(config).is_file():
            raise InputError(f"train_configs[{i}]: no such file '{config}'")


def _train_args(train_configs: list[Path], train_overrides: dict[str, Any], seed: int) -> tuple[str, ...]:
    """`mtr fit` arguments of every trial: the configs, then the fixed overrides over the trial defaults."""
    from mtr.studies.space import as_overrides

    overrides = dict(train_overrides)
    for key, value in {**TRIAL_DEFAULTS, "seed_everything": seed}.items():
        overrides.setdefault(key, value)
    return (*[arg for c in train_configs for arg in ("--config", str(c))], *as_overrides(overrides))


def run_sweep(sweep: Sweep, workers: int) -> dict[str, Any]:
    """Create or resume the study, run `workers` worker processes on it, then write and print the summary."""
    from mtr.tuning.summary import write_summary
    from mtr.tuning.worker import FINISHED, count, create_study, run_worker

    study = create_study(sweep)  # here, before the workers, so that they never race to create it
    print(f"study '{sweep.study_name}' in {sweep.storage}: {count(study, FINISHED)} of {sweep.n_trials} trials done")
    try:
        if workers == 1:
            run_worker(sweep)
        else:
            _spawn_workers(sweep, workers)
    finally:  # also after failed or interrupted workers: the summary shows what the study holds
        summary = write_summary(study, sweep.storage, sweep.root / "summary")
    best = summary["best"]
    print(f"trials by state: {summary['n_trials']}; summary in {sweep.root / 'summary'}")
    from mtr.studies.storage import GRACE_S

    running = summary["n_trials"].get("RUNNING", 0)
    if running:  # trials of workers elsewhere (a killed local worker's trial is re-run at once)
        print(
            f"the study is not complete: {running} trial(s) still RUNNING in other workers; it completes when they"
            " finish, or, if they were killed, when this command runs again after their heartbeat goes stale"
            f" ({GRACE_S} s)"
        )
    if best is None:
        print("no trial has completed yet")
    else:
        print(f"best trial {best['number']}: val/selection {best['value']:.6f} with {best['params']}")
    return summary


def _spawn_workers(sweep: Sweep, workers: int) -> None:
    """Start `workers` processes on the shared study and wait for them (spawn: no state inherited by fork)."""
    from mtr.tuning.worker import run_worker

    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=run_worker, args=(sweep, k), name=f"mtr-tune-{k}") for k in range(workers)]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them record their trials as failed
        for process in processes:
            process.join(timeout=60)
        raise
    failed = [f"{p.name} (exit {p.exitcode})" for p in processes if p.exitcode != 0]
    if failed:
        raise RunError(
            f"tune workers failed: {', '.join(failed)}; the study keeps what they recorded, and the same command "
            "resumes it (a killed worker's trial is run again)"
        )


def _dry_run(sweep: Sweep) -> None:
    """One training and one validation batch with every parameter at its first value, before any trial."""
    from mtr.tuning.worker import fit, selection_checkpoint

    first = {param.key: param.first_value() for param in sweep.params}
    sweep.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=sweep.root, prefix=".dry_run-") as folder:
        try:
            selection_checkpoint(fit([*sweep.trial_argv(first, Path(folder)), "--trainer.fast_dev_run", "true"], []))
        except InputError as error:
            raise InputError(f"params/train_overrides: dry run failed: {error}") from error
