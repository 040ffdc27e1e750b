"""A fifth, continuous objective declared by the objective table alone: tasks, labels, losses, metrics, predictions.

The dataset comes from `fifth_objective_world` (tests/conftest.py): a small simulated world built with the
messaging table plus `purchase_value` (continuous, label rule "conversion_value").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import polars
import pytest
import torch

from mtr.data.datamodule import MessagingDataModule
from mtr.models.frame import MultiTaskModel
from mtr.models.mmoe import GatedExperts
from mtr.schema import CHANNELS, SPLITS, DatasetSchema
from mtr.training.losses import FixedWeights, GradNorm, UncertaintyWeighting
from mtr.training.module import MultiTaskModule

FIFTH = "purchase_value"

# A small MMoE: the frame with 3 gated experts over 4-wide embeddings.
SMALL_MMOE = functools.partial(MultiTaskModel, shared=functools.partial(GatedExperts, n_experts=3), embedding_dim=4)


@pytest.fixture(scope="module")
def data(fifth_objective_world: tuple[Path, Path]) -> MessagingDataModule:
    module = MessagingDataModule(str(fifth_objective_world[1]), batch_size=1024, eval_batch_size=4096)
    module.setup("fit")
    return module


def continuous_columns(schema: DatasetSchema) -> list[int]:
    return [i for i, t in enumerate(schema.tasks) if t.objective == FIFTH]


def test_the_table_alone_adds_a_task_per_channel_and_an_organic_one(data: MessagingDataModule) -> None:
    schema = data.schema
    assert schema.objective_names == ("conversion", "engagement", "retention", "unsubscribe", FIFTH)
    assert len(schema.tasks) == 5 * len(CHANNELS) + 3  # conversion, retention and purchase value exist for "none"
    assert [t.name for t in schema.tasks if t.objective == FIFTH] == [f"{FIFTH}_{c}" for c in (*CHANNELS, "none")]
    assert schema.objective(FIFTH).kind == "continuous" and schema.objective(FIFTH).loss == "mse"
    # The build report gives a continuous task its mean label next to the share of non-zero labels.
    report = schema.metadata["rates"]["train"]
    assert report[f"{FIFTH}_none"]["mean"] > 0.1
    assert report[f"{FIFTH}_none"]["positive_rate"] == report["conversion_none"]["positive_rate"]


def test_continuous_labels_are_the_summed_conversion_value_of_the_window(
    fifth_objective_world: tuple[Path, Path], windows_of: Callable[[Path], polars.DataFrame]
) -> None:
    events, dataset = fifth_objective_world
    schema = DatasetSchema.load(dataset)
    rows = polars.concat([polars.read_parquet(schema.split_path(dataset, split)) for split in SPLITS])
    assert rows.schema[f"label_{FIFTH}"] == polars.Float64
    # Worked out apart from the label rules: the values of the user's conversions in [t0, end of the window).
    windows = windows_of(events)
    values = (
        windows.join(polars.read_parquet(events / "conversions.parquet"), on="user_id")
        .filter(polars.col("ts_right").is_between("t0", "end", closed="left"))
        .group_by("opportunity_id")
        .agg(expected=polars.col("value").sum())
    )
    labels = rows.join(values, left_on="row_id", right_on="opportunity_id", how="left").filter(
        polars.col(f"label_{FIFTH}").is_not_null()
    )
    assert labels.height > 0.9 * rows.height
    observed, expected = labels[f"label_{FIFTH}"], labels["expected"].fill_null(0.0)
    assert (observed - expected).abs().max() < 1e-9
    assert ((observed > 0) == (labels["label_conversion"] == 1)).all()
    assert (observed % 1 != 0).sum() > 50  # real values, not 0/1 flags
    # An immature window has no value yet, exactly like its conversion label.
    assert rows[f"label_{FIFTH}"].is_null().equals(rows["label_conversion"].is_null())


def test_continuous_tasks_train_with_the_masked_squared_error(data: MessagingDataModule) -> None:
    torch.manual_seed(0)
    module = MultiTaskModule(data.schema, SMALL_MMOE)
    batch = next(iter(data.train_dataloader()))
    outputs = module(batch.sparse, batch.dense)
    _, task_losses = module.compute_loss(batch)
    for i in continuous_columns(data.schema):
        mask = batch.masks[:, i] > 0
        assert mask.sum() > 10
        expected = (outputs[mask, i] - batch.labels[mask, i]).square().mean()
        torch.testing.assert_close(task_losses[i], expected)


@pytest.mark.parametrize("weighting", [FixedWeights, UncertaintyWeighting, GradNorm])
def test_an_mmoe_trains_and_reports_metrics_by_kind(data: MessagingDataModule, weighting: type) -> None:
    torch.manual_seed(0)
    module = MultiTaskModule(
        data.schema,
        SMALL_MMOE,
        loss_weighting=weighting,
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
    )
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=8,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    metrics = trainer.callback_metrics
    assert torch.isfinite(metrics["train/loss"])
    binary_auc = []
    for task in data.schema.tasks:
        if task.objective == FIFTH:
            assert metrics[f"val/{task.name}/rmse"] > 0 and torch.isfinite(metrics[f"val/{task.name}/mae"])
            assert f"val/{task.name}/auc" not in metrics and f"val/{task.name}/logloss" not in metrics
        else:
            assert f"val/{task.name}/rmse" not in metrics
            binary_auc.append(metrics[f"val/{task.name}/auc"])
        assert torch.isfinite(metrics[f"train/weight/{task.name}"])
    # The default selection is the mean AUC over the binary tasks, untouched by the continuous ones.
    assert metrics["val/selection"].item() == pytest.approx(torch.stack(binary_auc).nanmean().item(), abs=1e-6)


def test_predictions_are_probabilities_of_binary_tasks_and_raw_values_of_continuous_ones(
    data: MessagingDataModule,
) -> None:
    torch.manual_seed(0)
    module = MultiTaskModule(data.schema, SMALL_MMOE)
    quiet = {"enable_progress_bar": False, "enable_model_summary": False}
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, **quiet)
    data.predict_split = "validation"
    predictions = torch.cat([p["predictions"] for p in trainer.predict(module, data)])
    batch = data.split("validation")[torch.arange(len(data.split("validation")))]
    with torch.no_grad():
        outputs = module(batch.sparse, batch.dense)
    continuous = continuous_columns(data.schema)
    binary = [i for i in range(len(data.schema.tasks)) if i not in continuous]
    torch.testing.assert_close(predictions[:, continuous], outputs[:, continuous])
    torch.testing.assert_close(predictions[:, binary], torch.sigmoid(outputs[:, binary]))
    assert ((predictions[:, continuous] < 0) | (predictions[:, continuous] > 1)).any()
