"""A corpus of bad inputs over the commands: each gives an error that names the thing, and writes nothing.

One case is one line of CASES: an id, the command line (placeholders below) and the words its error must hold.
Called from Python, `mtr.cli.main` raises mtr's errors (`InputError`) and exits 2 on the parser's own, so
both are read here; `test_outputs.py` checks that the console script prints one line and exits 2.

Placeholders: {tmp} (an empty scratch folder), {events} and {dataset} (a small simulated world and its
dataset), {run} (a run folder: config.yaml only), {readme} (a text file that is not Parquet), {other_events}
(another simulation), {no_plan} (the dataset without a feature column in train).
"""

# ruff: noqa: E501 (the corpus reads as a table, one case per line)
from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from mtr.cli import main
from mtr.errors import InputError

FIT = ["fit", "--config", "configs/experiment/sim_mmoe.yaml", "--data.path", "{dataset}", "--wandb", "false"]
FIT_INTO = [*FIT, "--trainer.default_root_dir", "{tmp}/run"]
PARETO = ["pareto", "--config", "configs/pareto/sim.yaml", "--run", "{run}", "--dataset", "{dataset}"]
PARETO_SIM = [*PARETO, "--events", "{events}"]
FLOOR_OVER_CAP = json.dumps({"retention": {"min": 0.7, "max": 0.6}})

CASES: list[tuple[str, list[str], str]] = [
    # Options: a misspelt or abbreviated option is an error, never another option.
    ("abbreviated option", ["simulate", "--user", "50", "--out", "{tmp}/a"], "unrecognized arguments: --user"),
    ("abbreviated trainer option", [*FIT_INTO, "--trainer.max_epoch", "1"], "unrecognized arguments"),
    ("no users", ["simulate", "--users", "0", "--out", "{tmp}/a"], "--users must be >= 1"),
    # Output folders that cannot be written (the overwrite rule itself is in test_outputs.py).
    ("out under /dev/null", ["simulate", "--users", "5", "--days", "1", "--out", "/dev/null/events"], "/dev/null is a file, not a folder"),
    ("out under /proc", ["simulate", "--users", "5", "--days", "1", "--out", "/proc/mtr/events"], "/proc is not writable"),
    ("out is the working folder", ["simulate", "--users", "5", "--days", "1", "--out", "."], "is not empty and was written by no mtr command"),
    # Training settings that would train nothing or divide by zero.
    ("negative epochs", [*FIT_INTO, "--trainer.max_epochs", "-2"], "trainer.max_epochs: must be at least 1"),
    ("zero epochs", [*FIT_INTO, "--trainer.max_epochs", "0"], "trainer.max_epochs: must be at least 1"),
    ("zero batch", [*FIT_INTO, "--data.batch_size", "0"], "data.batch_size: must be at least 1"),
    ("zero eval batch", [*FIT_INTO, "--data.eval_batch_size", "0"], "data.eval_batch_size: must be at least 1"),
    ("a split without a feature", [*FIT, "--data.path", "{no_plan}", "--trainer.default_root_dir", "{tmp}/run"], "table 'train' has no column 'plan'"),
    ("unknown objective table", ["build-dataset", "--events", "{events}", "--out", "{tmp}/d", "--objectives", "x"], "objectives"),
    # The Pareto study: every argument checked before the candidates are scored.
    ("zero trials", [*PARETO_SIM, "--out", "{tmp}/p", "--n_trials", "0"], "n_trials: a study needs at least 1"),
    ("unknown split", [*PARETO_SIM, "--out", "{tmp}/p", "--split", "validation,tests"], "not ['tests']"),
    ("train with one model", [*PARETO_SIM, "--out", "{tmp}/p", "--split", "train"], "learnt from every user's 'train'"),
    ("events of no event log", [*PARETO, "--events", "{run}", "--out", "{tmp}/p"], "is not an event-log folder"),
    ("study into its dataset", [*PARETO_SIM, "--out", "{dataset}"], "overlaps the input"),
    ("events of another simulation", [*PARETO, "--events", "{other_events}", "--out", "{tmp}/p"], "built from another event log"),
    ("floor over cap", [*PARETO_SIM, "--out", "{tmp}/p", "--constraints", FLOOR_OVER_CAP], "min 0.7 is above max 0.6"),
    ("unknown limit", [*PARETO_SIM, "--out", "{tmp}/p", "--constraints", '{"retention": {"least": 0.6}}'], "constraints.retention"),
    # Scoring: the input is read and checked before the artifact is loaded.
    ("score a text file", ["score", "--artifact", "{tmp}/a", "--input", "{readme}", "--out", "{tmp}/s.parquet"], "not a readable Parquet file"),
    ("score in batches of 0", ["score", "--artifact", "{tmp}/a", "--input", "{readme}", "--out", "{tmp}/s.parquet", "--batch_size", "0"], "batch_size: must be at least 1"),
    ("score nothing", ["score", "--artifact", "{tmp}/a", "--input", "{tmp}/none.parquet", "--out", "{tmp}/s.parquet"], "not found"),
]  # fmt: skip


@pytest.fixture(scope="module")
def places(sim_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("corpus")
    run = root / "run"
    run.mkdir()
    (run / "config.yaml").write_text("data: {}\n")  # a run trained on every user (its weights are never reached)
    (root / "README.txt").write_text("not a table\n")
    no_plan = root / "no_plan"  # the dataset with a feature column dropped from its train split
    shutil.copytree(sim_dataset, no_plan)
    pl.read_parquet(no_plan / "train.parquet").drop("plan").write_parquet(no_plan / "train.parquet")
    other_events = root / "other_events"
    main(["simulate", "--users", "20", "--days", "3", "--seed", "9", "--out", str(other_events)])
    return {
        "{events}": str(sim_dataset.parent / "events"),
        "{dataset}": str(sim_dataset),
        "{run}": str(run),
        "{readme}": str(root / "README.txt"),
        "{other_events}": str(other_events),
        "{no_plan}": str(no_plan),
    }


@pytest.mark.parametrize(("case", "argv", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_named_and_writes_nothing(
    case: str, argv: list[str], message: str, places: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    filled = [_fill(arg, {**places, "{tmp}": str(tmp_path)}) for arg in argv]
    with pytest.raises((InputError, SystemExit)) as raised:
        main(filled)
    error = raised.value
    said = str(error) if isinstance(error, InputError) else capsys.readouterr().err
    if isinstance(error, SystemExit):
        assert error.code == 2
    assert message in said, said
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no partial output, no empty folder


def _fill(arg: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        arg = arg.replace(key, value)
    return arg
