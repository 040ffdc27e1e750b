"""The oracle gap: truth and model metrics on the same labelled test rows, joined by row id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.errors import InputError
from mtr.experiments.oracle_gap import TRUTH_FILE, oracle_gap, simulated_dataset
from mtr.schema import DatasetSchema
from mtr.sim.config import WorldConfig
from mtr.training.metrics import binary_auc

OBJECTIVES = ("conversion", "engagement", "retention", "unsubscribe")


def write_truth(events: Path, test: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """Truth rows for the test split in reverse order; engagement/unsubscribe null on no-send rows."""
    rng = np.random.default_rng(seed)
    send = (test["channel"] != "none").to_numpy()
    columns = {"opportunity_id": test["row_id"].to_numpy()}
    for objective in OBJECTIVES:
        p = rng.uniform(0.01, 0.99, test.height)
        columns[f"p_{objective}"] = np.where(send | (objective in ("conversion", "retention")), p, np.nan)
    truth = pl.DataFrame(columns).with_columns(pl.col(f"p_{o}").fill_nan(None) for o in OBJECTIVES).reverse()
    (events / TRUTH_FILE).parent.mkdir(parents=True, exist_ok=True)
    truth.write_parquet(events / TRUTH_FILE)
    return truth


def write_predictions(path: Path, test: pl.DataFrame, schema: DatasetSchema, truth: pl.DataFrame) -> None:
    """Predictions equal to the truth of each task's objective, rows shuffled."""
    joined = test.select("row_id").join(truth, left_on="row_id", right_on="opportunity_id", how="left")
    frame = joined.select(
        "row_id", *[pl.col(f"p_{t.objective}").fill_null(0.5).alias(f"p_{t.name}") for t in schema.tasks]
    )
    frame.sample(fraction=1.0, shuffle=True, seed=1).write_parquet(path)


@pytest.fixture()
def world(toy_dataset: Path, tmp_path: Path) -> tuple[Path, Path, pl.DataFrame, pl.DataFrame]:
    test = pl.read_parquet(toy_dataset / "test.parquet")
    truth = write_truth(tmp_path / "events", test)
    return toy_dataset, tmp_path / "events", test, truth


def test_truth_metrics_are_scored_on_each_tasks_labelled_rows(world: tuple) -> None:
    dataset, events, test, truth = world
    result = oracle_gap(dataset, events, {})
    task = result["tasks"].index("engagement_email")
    rows = test.join(truth, left_on="row_id", right_on="opportunity_id").filter(pl.col("mask_engagement_email") == 1)
    expected_auc = binary_auc(rows["p_engagement"].to_torch(), rows["label_engagement"].to_torch())
    assert result["rows"][task] == rows.height == int((test["channel"] == "email").sum())
    assert result["positives"][task] == int(rows["label_engagement"].sum())
    assert result["truth"]["auc"][task] == pytest.approx(float(expected_auc), abs=1e-12)
    none_task = result["tasks"].index("retention_none")
    assert result["rows"][none_task] == int((test["channel"] == "none").sum())
    assert not np.isnan(result["truth"]["ece"]).any()  # null truth of no-send rows is never scored


def test_a_model_predicting_the_truth_scores_like_the_truth_in_any_row_order(world: tuple, tmp_path: Path) -> None:
    dataset, events, test, truth = world
    write_predictions(tmp_path / "oracle.parquet", test, DatasetSchema.load(dataset), truth)
    result = oracle_gap(dataset, events, {"oracle_copy": tmp_path / "oracle.parquet"})
    for metric, values in result["truth"].items():
        np.testing.assert_allclose(result["models"]["oracle_copy"][metric], values, rtol=1e-6, err_msg=metric)


def test_missing_prediction_rows_are_named(world: tuple, tmp_path: Path) -> None:
    dataset, events, test, truth = world
    path = tmp_path / "partial.parquet"
    write_predictions(path, test, DatasetSchema.load(dataset), truth)
    pl.read_parquet(path).head(10).write_parquet(path)
    with pytest.raises(InputError, match=rf"predictions {path}' lacks {test.height - 10} of the {test.height}"):
        oracle_gap(dataset, events, {"partial": path})


def test_null_truth_on_a_labelled_row_is_an_error(world: tuple) -> None:
    dataset, events, test, truth = world
    broken = truth.with_columns(pl.lit(None, pl.Float64).alias("p_retention"))
    broken.write_parquet(events / TRUTH_FILE)
    with pytest.raises(InputError, match=r"logged_probabilities.*null values on \d+ labelled rows.*retention_push"):
        oracle_gap(dataset, events, {})


def test_simulated_dataset_is_reused_and_refuses_another_world(tmp_path: Path) -> None:
    events, dataset = simulated_dataset(tmp_path, users=200, days=112, seed=5, world=WorldConfig(task_correlation=0.0))
    schema_written = (dataset / "schema.json").stat().st_mtime_ns
    again = simulated_dataset(tmp_path, users=200, days=112, seed=5, world=WorldConfig(task_correlation=0.0))
    assert again == (events, dataset) and (dataset / "schema.json").stat().st_mtime_ns == schema_written
    result = oracle_gap(dataset, events, {})
    # A simulated dataset has null engagement labels on no-send rows: they must not reach the metrics.
    engagement = [i for i, task in enumerate(result["tasks"]) if task.startswith("engagement_")]
    assert all(0.5 < result["truth"]["auc"][i] < 1 for i in engagement)
    assert all(result["rows"][i] > 0 for i in engagement)
    with pytest.raises(InputError, match="holds another world"):
        simulated_dataset(tmp_path, users=200, days=112, seed=5, world=WorldConfig(task_correlation=1.0))
