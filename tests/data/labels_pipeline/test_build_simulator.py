"""The build on `mtr simulate` output: observed labels agree with the simulator's true probabilities."""

from __future__ import annotations

import math

import polars as pl
import pytest

from mtr.cli import main
from mtr.data.build import BuildConfig, build_dataset_from_events
from mtr.schema import SPLITS, TaskSpec, messaging_tasks


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """All rows of a dataset built from a small simulation, joined to the true outcome probabilities."""
    folder = tmp_path_factory.mktemp("sim")
    main(["simulate", "--users", "1500", "--days", "28", "--seed", "11", "--out", str(folder / "events")])
    schema = build_dataset_from_events(folder / "events", folder / "dataset", BuildConfig(partitions=2))
    rows = pl.concat([pl.read_parquet(schema.split_path(folder / "dataset", split)) for split in SPLITS])
    truth = pl.read_parquet(folder / "events" / "truth" / "logged_probabilities.parquet")
    return rows.join(truth, left_on="row_id", right_on="opportunity_id", how="left")


@pytest.mark.parametrize("task", messaging_tasks(), ids=lambda task: task.name)
def test_label_rates_match_the_true_probabilities(simulated: pl.DataFrame, task: TaskSpec) -> None:
    labelled = simulated.filter(pl.col(task.mask_column) == 1)
    assert labelled.height > 1000
    truth = labelled[f"p_{task.objective}"]
    assert truth.null_count() == 0
    observed = labelled[task.label_column].mean()
    expected = truth.mean()
    # The labels are Bernoulli draws of the true probabilities: 4 standard errors apart at most.
    standard_error = math.sqrt((truth * (1 - truth)).sum()) / labelled.height
    assert abs(observed - expected) <= 4 * standard_error + 1e-4, (observed, expected)


def test_every_opportunity_is_in_exactly_one_split(simulated: pl.DataFrame) -> None:
    assert simulated["row_id"].is_unique().all()
    assert simulated.height == simulated["p_conversion"].count()
