"""Known answers for the evaluation metrics, the selection criterion and gate usage."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from mtr.errors import InputError
from mtr.schema import DatasetSchema, FeatureSpec, TaskSpec
from mtr.training.metrics import (
    METRICS,
    GateUsage,
    Selection,
    binary_auc,
    channel_means,
    metrics_by_kind,
    regression_metrics,
    task_metrics,
)


def brute_force_auc(scores: list[float], labels: list[int]) -> float:
    """Share of (positive, negative) pairs ranked correctly, ties counting one half."""
    pairs = [(p, n) for p, n in itertools.product(range(len(scores)), repeat=2) if labels[p] == 1 and labels[n] == 0]
    wins = sum(1.0 if scores[p] > scores[n] else 0.5 if scores[p] == scores[n] else 0.0 for p, n in pairs)
    return wins / len(pairs)


def test_auc_equals_the_pair_count_with_ties():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 6, (200,), generator=generator).float() / 5  # many ties
    labels = (torch.rand(200, generator=generator) < 0.3 + 0.4 * scores).long()
    expected = brute_force_auc(scores.tolist(), labels.tolist())
    assert binary_auc(scores, labels).item() == pytest.approx(expected, abs=1e-12)
    assert binary_auc(torch.tensor([0.1, 0.4, 0.35, 0.8]), torch.tensor([0, 0, 1, 1])).item() == 0.75
    assert math.isnan(binary_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])).item())


def test_task_metrics_on_a_hand_case_use_labelled_rows_only():
    probabilities = torch.tensor([[0.2, 0.9], [0.6, 0.5], [0.8, 0.5], [0.4, 0.1]])
    labels = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    masks = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    metrics = task_metrics(probabilities, labels, masks, n_bins=2)
    # Task 0: every row labelled, rate 1/2.
    logloss = -(math.log(0.8) + math.log(0.6) + math.log(0.8) + math.log(0.6)) / 4
    assert metrics["logloss"][0].item() == pytest.approx(logloss)
    assert metrics["ne"][0].item() == pytest.approx(logloss / math.log(2))
    assert metrics["auc"][0].item() == 1.0
    assert metrics["calibration"][0].item() == pytest.approx((0.2 + 0.6 + 0.8 + 0.4) / 2)
    # Bins [0, .5): predictions .2, .4 with no positive; [.5, 1]: .6, .8, both positive.
    assert metrics["ece"][0].item() == pytest.approx(0.5 * 0.3 + 0.5 * 0.3)
    # Task 1: only rows 0 and 1 count (the masked rows' 0.5 and 0.1 are ignored).
    assert metrics["labelled"][1].item() == 2 and metrics["positives"][1].item() == 1
    assert metrics["logloss"][1].item() == pytest.approx(-(math.log(0.9) + math.log(0.5)) / 2)
    assert metrics["ece"][1].item() == pytest.approx(abs((0.9 + 0.5) / 2 - 0.5))  # 0.5 falls in the upper bin
    assert metrics["calibration"][1].item() == pytest.approx(1.4)


def test_undefined_metrics_are_nan():
    probabilities = torch.tensor([[0.3, 0.3], [0.6, 0.6]])
    metrics = task_metrics(probabilities, torch.zeros(2, 2), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
    assert metrics["logloss"][0].item() == pytest.approx(-(math.log(0.7) + math.log(0.4)) / 2)
    for name in ("auc", "ne", "calibration"):  # a single class: undefined
        assert math.isnan(metrics[name][0].item()), name
    for name in ("auc", "logloss", "ne", "calibration", "ece"):  # no labelled row at all
        assert math.isnan(metrics[name][1].item()), name


def test_regression_metrics_on_a_hand_case_use_labelled_rows_only() -> None:
    predictions = torch.tensor([[2.0, 1.0], [0.0, 5.0], [10.0, float("inf")]])
    labels = torch.tensor([[4.0, 0.0], [0.0, 0.0], [20.0, 0.0]])
    masks = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    metrics = regression_metrics(predictions, labels, masks)
    # Task 0: errors -2, 0, -10.
    assert metrics["rmse"][0].item() == pytest.approx(math.sqrt(104 / 3))
    assert metrics["mae"][0].item() == pytest.approx(4.0)
    assert metrics["mean_error"][0].item() == pytest.approx(-4.0)  # predicts too little on average
    assert metrics["calibration"][0].item() == pytest.approx(12 / 24)
    # Task 1: the unlabelled row's infinite prediction is ignored; every label is 0, so calibration is undefined.
    assert metrics["rmse"][1].item() == pytest.approx(math.sqrt(13))
    assert metrics["labelled"][1].item() == 2 and math.isnan(metrics["calibration"][1].item())


def test_metrics_by_kind_score_each_task_by_its_kind_only() -> None:
    predictions = torch.tensor([[0.2, 3.0], [0.7, 1.0], [0.9, 0.0]])
    labels = torch.tensor([[0.0, 2.0], [1.0, 0.0], [1.0, 1.0]])
    masks = torch.ones(3, 2)
    metrics = metrics_by_kind(predictions, labels, masks, torch.tensor([True, False]))
    assert set(metrics) == {*METRICS, "labelled"}
    binary, continuous = (
        task_metrics(predictions[:, :1], labels[:, :1], masks[:, :1]),
        regression_metrics(predictions[:, 1:], labels[:, 1:], masks[:, 1:]),
    )
    for name in ("auc", "logloss", "ne", "ece"):
        assert metrics[name][0].item() == pytest.approx(binary[name][0].item()) and math.isnan(metrics[name][1])
    for name in ("rmse", "mae", "mean_error"):
        assert metrics[name][1].item() == pytest.approx(continuous[name][0].item()) and math.isnan(metrics[name][0])
    assert metrics["calibration"].tolist() == pytest.approx([1.8 / 2, 4.0 / 3])


def schema_with_channels() -> DatasetSchema:
    feature = FeatureSpec("plan", "sparse", "String", vocabulary=("free",))
    tasks = tuple(
        TaskSpec(f"{objective}_{channel}", objective, channel, f"label_{objective}")
        for channel, objective in [("push", "conversion"), ("push", "engagement"), ("email", "conversion")]
    )
    return DatasetSchema("channels", (feature,), tasks)


def test_channel_means_and_selection_criteria():
    schema = schema_with_channels()
    metrics = {"auc": torch.tensor([0.6, math.nan, 0.8], dtype=torch.float64), "ne": torch.tensor([0.9, 0.8, 0.7])}
    means = channel_means(metrics["auc"], schema)
    assert means["push"].item() == pytest.approx(0.6) and means["email"].item() == pytest.approx(0.8)
    names = schema.task_names
    assert Selection.parse("auc_mean", names).score(metrics).item() == pytest.approx(0.7)  # NaN task left out
    assert Selection.parse("ne_mean", names).score(metrics).item() == pytest.approx(-0.8)  # negated
    weighted = Selection.parse("auc:conversion_push=1,conversion_email=3", names)
    assert weighted.score(metrics).item() == pytest.approx((0.6 + 3 * 0.8) / 4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [("accuracy_mean", "metric in"), ("auc:conversion_sms=1", "unknown task 'conversion_sms'"), ("auc:x", "unknown")],
)
def test_bad_selection_specs_are_named(spec, message):
    with pytest.raises(InputError, match=message):
        Selection.parse(spec, schema_with_channels().task_names)


def test_a_selection_that_no_weighted_task_defines_is_rejected() -> None:
    names = schema_with_channels().task_names
    with pytest.raises(InputError, match="rmse scores continuous tasks; none is weighted"):
        Selection.parse("rmse_mean", names, ["binary"] * 3)
    with pytest.raises(InputError, match="auc scores binary tasks"):
        Selection.parse("auc:conversion_email=1", names, ["binary", "binary", "continuous"])
    rmse = Selection.parse("rmse_mean", names, ["binary", "binary", "continuous"])
    metrics = {"rmse": torch.tensor([math.nan, math.nan, 2.5], dtype=torch.float64)}
    assert rmse.score(metrics).item() == pytest.approx(-2.5)  # lower is better: negated


def test_gate_usage_shows_a_collapsed_gate():
    usage = GateUsage()
    one_hot = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(6, 1)
    uniform = torch.full((6, 4), 0.25)
    usage.update({"collapsed": one_hot[:3], "uniform": uniform[:3]})
    usage.update({"collapsed": one_hot[3:], "uniform": uniform[3:]})
    summary = usage.compute()
    assert summary["collapsed/max_share"].item() == 1.0 and summary["collapsed/expert_1"].item() == 0.0
    assert summary["collapsed/entropy"].item() == pytest.approx(0.0, abs=1e-9)
    assert summary["uniform/max_share"].item() == 0.25 and summary["uniform/entropy"].item() == pytest.approx(1.0)
