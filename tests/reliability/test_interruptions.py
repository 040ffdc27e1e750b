"""kill -9 in the middle of a long command, then the same command again: it resumes or cleans up, losing nothing.

Slow (each case trains or builds for real): `make test-all` runs them, `make test` does not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from mtr.cli import main

pytestmark = pytest.mark.slow
QUIET = ["--wandb", "false", "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mtr.cli", *argv], stdout=log.open("w"), stderr=subprocess.STDOUT)


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 300.0) -> None:
    """kill -9 `process` as soon as `ready()` holds; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, "the command finished before it could be interrupted"
        assert time.monotonic() < deadline, "the command never reached the point of interruption"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


def test_a_killed_build_leaves_its_temporary_folder_and_the_next_build_removes_it(sim_dataset: Path, tmp_path: Path):
    events, out = sim_dataset.parent / "events", tmp_path / "dataset"
    argv = ["build-dataset", "--events", str(events), "--out", str(out)]
    process = start(argv, tmp_path / "log.txt")
    kill_when(process, lambda: any(tmp_path.glob(".dataset.tmp-*/*.parquet")))
    assert not out.exists() and list(tmp_path.glob(".dataset.tmp-*"))  # killed mid-write: nothing half-written
    main(argv)
    assert not list(tmp_path.glob(".dataset.*")) and (out / "schema.json").is_file()
    rows = {name: pl.read_parquet(out / f"{name}.parquet").height for name in ("train", "validation", "test")}
    assert rows == {name: pl.read_parquet(sim_dataset / f"{name}.parquet").height for name in rows}


def test_a_killed_fit_resumes_with_every_epochs_metrics(sim_dataset: Path, tmp_path: Path):
    run = tmp_path / "run"
    fit = ["fit", "--config", "configs/experiment/sim_mmoe.yaml", "--data.path", str(sim_dataset), *QUIET]
    fit += ["--trainer.default_root_dir", str(run), "--seed_everything", "1", "--trainer.max_epochs", "6"]
    process = start(fit, tmp_path / "log.txt")
    last = run / "checkpoints" / "last.ckpt"
    kill_when(process, lambda: last.exists() and time.time() - last.stat().st_mtime > 0.5 and _epochs(run) >= 2)
    interrupted_at = _epochs(run)
    main([*fit, "--ckpt_path", str(last)])
    validated = pl.read_csv(run / "metrics.csv").filter(pl.col("val/selection").is_not_null())["epoch"].to_list()
    assert validated == list(range(6)), (interrupted_at, validated)


def _epochs(run: Path) -> int:
    metrics = run / "metrics.csv"
    if not metrics.exists():
        return 0
    try:
        return pl.read_csv(metrics).filter(pl.col("val/selection").is_not_null()).height
    except (pl.exceptions.PolarsError, OSError):
        return 0


def test_a_killed_study_resumes_to_its_target(sim_dataset: Path, tmp_path: Path):
    run = tmp_path / "run"
    fit = ["fit", "--config", "configs/experiment/sim_mmoe.yaml", "--data.path", str(sim_dataset), *QUIET]
    main([*fit, "--trainer.default_root_dir", str(run), "--trainer.max_epochs", "1"])
    out = tmp_path / "study"
    pareto = ["pareto", "--config", "configs/pareto/sim.yaml", "--run", str(run), "--dataset", str(sim_dataset)]
    pareto += ["--events", str(sim_dataset.parent / "events"), "--out", str(out), "--n_trials", "400"]
    process = start(pareto, tmp_path / "log.txt")
    kill_when(process, lambda: _completed(out) >= 20)
    done_before = _completed(out)
    main([*pareto[:-2], "--n_trials", "60"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials_completed"] == 60 and summary["trials_run_here"] <= 60 - done_before + 1


def _completed(out: Path) -> int:
    import optuna

    if not (out / "study.db").exists():
        return 0
    try:
        study = optuna.load_study(study_name="pareto", storage=f"sqlite:///{out / 'study.db'}")
    except (KeyError, ValueError, RuntimeError):
        return 0
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
