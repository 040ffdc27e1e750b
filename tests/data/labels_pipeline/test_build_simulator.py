"""The build on `mtr simulate` output: on every split, observed labels agree with the simulator's true
probabilities, and the splits' truths agree with each other (no label changes meaning at the log's end)."""

from __future__ import annotations

import math
from datetime import timedelta

import polars as pl
import pytest

from mtr.cli import main
from mtr.data.build import BuildConfig, build_dataset_from_events
from mtr.objectives import DECISION_CONVERSION, MESSAGING_OBJECTIVES
from mtr.schema import SPLITS, DatasetSchema, TaskSpec, messaging_tasks
from mtr.sim.config import FATIGUE_DAYS

TASKS = messaging_tasks()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[DatasetSchema, pl.DataFrame]:
    """Every split's rows of a dataset built from a simulation (the policy decides until the log ends),
    joined to the true outcome probabilities of their logged actions."""
    folder = tmp_path_factory.mktemp("sim")
    # Every message live every day, so that the world is stationary after the cold start (see below).
    world = ["--world.live_messages", "24"]
    main(["simulate", "--users", "2000", "--days", "112", "--seed", "11", *world, "--out", str(folder / "events")])
    # The messaging table and the decision's conversion, so that both conversions are checked on one world.
    table = (*MESSAGING_OBJECTIVES, DECISION_CONVERSION)
    schema = build_dataset_from_events(folder / "events", folder / "dataset", BuildConfig(partitions=2), table)
    splits = [
        pl.read_parquet(schema.split_path(folder / "dataset", split)).with_columns(split=pl.lit(split))
        for split in SPLITS
    ]
    truth = pl.read_parquet(folder / "events" / "truth" / "logged_probabilities.parquet")
    return schema, pl.concat(splits).join(truth, left_on="row_id", right_on="opportunity_id", how="left")


def _labelled(rows: pl.DataFrame, task: TaskSpec, split: str) -> pl.DataFrame:
    return rows.filter((pl.col("split") == split) & (pl.col(task.mask_column) == 1))


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
@pytest.mark.parametrize("split", SPLITS)
def test_each_splits_label_rate_matches_its_true_probability(simulated, task: TaskSpec, split: str) -> None:
    labelled = _labelled(simulated[1], task, split)
    assert labelled.height > 300  # every split carries matured labels for every task
    truth = labelled[f"p_{task.objective}"]
    assert truth.null_count() == 0
    # The labels are Bernoulli draws of the true probabilities.
    standard_error = math.sqrt((truth * (1 - truth)).sum()) / labelled.height
    z = (labelled[task.label_column].mean() - truth.mean()) / standard_error
    assert abs(z) < 3, (split, z)


@pytest.mark.parametrize("task", TASKS, ids=lambda task: task.name)
def test_the_splits_true_rates_agree(simulated, task: TaskSpec) -> None:
    """A stationary world gives every split the same true rate, up to sampling error (a label whose window
    lengthens near the log's end would make the last split's truth drift). The simulator starts cold:
    its first week has no send history, hence no fatigue, so train is compared from day 7 on."""
    schema, rows = simulated
    first_day = pl.Series([schema.metadata["split_days"]["train"]["first"]]).str.to_date()[0]
    warm = rows.filter(pl.col("ts").dt.date() >= first_day + timedelta(days=FATIGUE_DAYS))
    means = {}
    for split in SPLITS:
        truth = _labelled(warm, task, split)[f"p_{task.objective}"]
        assert truth.len() > 100, (split, truth.len(), warm.height)
        means[split] = (truth.mean(), truth.std() / math.sqrt(truth.len()))
    for split in ("validation", "test"):
        (mean, error), (train_mean, train_error) = means[split], means["train"]
        z = (mean - train_mean) / math.hypot(error, train_error)
        assert abs(z) < 4, (split, means)


def test_splits_are_disjoint_embargoed_and_matured(simulated) -> None:
    schema, rows = simulated
    assert rows["row_id"].is_unique().all()
    rule = schema.metadata["split_rule"]
    assert (rule["horizon_days"], rule["longest_label"], rule["embargo_days"]) == (29, "retention", 29)
    days = {split: rows.filter(pl.col("split") == split)["ts"].dt.date() for split in SPLITS}
    # Every label of an earlier split had matured before the next split's first decision.
    assert (days["validation"].min() - days["train"].max()).days >= 29
    assert (days["test"].min() - days["validation"].max()).days >= 29
    log_end = pl.Series([schema.metadata["log_end"]]).str.to_datetime().dt.date()[0]
    assert (log_end - days["test"].max()).days >= 29
    assert rule["left_out_days"] == {"embargo": 56, "immature": 28}  # 112 days: 28 in splits


@pytest.mark.parametrize("split", SPLITS)
def test_each_splits_decision_reward_matches_its_truth_for_sends_and_send_nothing(simulated, split: str) -> None:
    """The decision reward (any conversion in [ts, ts + 7 d), whatever the action) against the oracle's truth of
    the same window. One user's windows overlap from day to day, so the standard error sums per user."""
    label = "label_decision_conversion"
    rows = simulated[1].filter((pl.col("split") == split) & pl.col(label).is_not_null())
    for sends in (True, False):
        part = rows.filter((pl.col("channel") != "none") == sends)
        assert part.height > 1000 and part["p_decision_conversion"].null_count() == 0
        residual = part.group_by("user_id").agg((pl.col(label) - pl.col("p_decision_conversion")).sum())
        z = residual[:, 1].sum() / math.sqrt((residual[:, 1] ** 2).sum())
        assert abs(z) < 3, (split, sends, z)
