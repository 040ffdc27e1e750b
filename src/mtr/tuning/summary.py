"""The sweep's summary: best.json (best trial, its command, trial counts) and trials.csv (one row per trial)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import polars as pl
from optuna.trial import TrialState

from mtr.io import atomic_output_dir, write_json

TRIAL_COLUMNS = ("number", "state", "value", "worker", "validated_epochs", "duration_s", "run_dir")


def trials_table(study: optuna.Study) -> pl.DataFrame:
    """One row per trial: TRIAL_COLUMNS, then one column per parameter.

    A pruned trial's value is its last reported val/selection; validated_epochs counts its reports.
    """
    trials = study.get_trials(deepcopy=False)
    keys = list(dict.fromkeys(key for trial in trials for key in trial.params))
    rows: dict[str, list[Any]] = {column: [] for column in (*TRIAL_COLUMNS, *keys)}
    for trial in trials:  # a few hundred trials at most: not a hot path
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        fields = {"number": trial.number, "state": trial.state.name, "value": trial.value, "duration_s": duration}
        fields.update({name: trial.user_attrs.get(name) for name in ("worker", "run_dir")})
        fields["validated_epochs"] = len(trial.intermediate_values)
        for column in rows:
            rows[column].append(fields[column] if column in fields else trial.params.get(column))
    return pl.DataFrame(rows, strict=False)


def best_summary(study: optuna.Study, storage: str) -> dict[str, Any]:
    """Best trial (None before any trial completed) and the number of trials in each state."""
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    summary: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": storage,
        "direction": "maximize",
        "metric": "val/selection",
        "n_trials": {state.name: states.count(state) for state in TrialState if state in states},
        "best": None,
    }
    completed = [trial for trial in study.get_trials(deepcopy=False) if trial.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        summary["best"] = {
            "number": best.number,
            "value": best.value,
            "params": best.params,
            "command": best.user_attrs.get("command"),
            "run_dir": best.user_attrs.get("run_dir"),
            "best_checkpoint": best.user_attrs.get("best_checkpoint"),
        }
    return summary


def write_summary(study: optuna.Study, storage: str, out: Path) -> dict[str, Any]:
    """Write best.json and trials.csv into `out` (replaced atomically); return the best.json content."""
    summary = best_summary(study, storage)
    table = trials_table(study)
    with atomic_output_dir(out, "tune") as folder:
        write_json(folder / "best.json", summary)
        table.write_csv(folder / "trials.csv")
    return summary
