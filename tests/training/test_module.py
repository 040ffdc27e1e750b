"""MultiTaskModule: masked rows cannot move gradients; fit, checkpoint selection, logged metrics, predictions."""

from __future__ import annotations

import functools

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from mtr.data.batch import Batch, sparse_batch
from mtr.data.datamodule import MessagingDataModule
from mtr.errors import InputError
from mtr.models.frame import MultiTaskModel
from mtr.models.mmoe import GatedExperts
from mtr.models.shared_bottom import SharedMLP
from mtr.models.single_task import PerTaskBottoms
from mtr.training.losses import FixedWeights, GradNorm, UncertaintyWeighting
from mtr.training.module import MultiTaskModule

# A small MMoE: the frame with 3 gated experts over 4-wide embeddings.
SMALL_MMOE = functools.partial(MultiTaskModel, shared=functools.partial(GatedExperts, n_experts=3), embedding_dim=4)
# The single-task baseline: nothing shared, so GradNorm has no shared layer to measure.
SINGLE_TASK = functools.partial(MultiTaskModel, shared=PerTaskBottoms, features_per_task=True, tower_hidden=())


@pytest.fixture(scope="module")
def data(toy_dataset) -> MessagingDataModule:
    module = MessagingDataModule(str(toy_dataset), batch_size=256, eval_batch_size=512)
    module.setup("fit")
    return module


def gradients(module: MultiTaskModule, batch: Batch) -> dict[str, torch.Tensor]:
    module.zero_grad()
    module.compute_loss(batch)[0].backward()
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


def with_rows_changed(batch: Batch, rows: slice, tasks: list[int] | None = None) -> Batch:
    """A copy of `batch` whose `rows` have other labels (on `tasks`, or all) and, if `tasks` is None, other features."""
    ids = torch.stack([batch.sparse[key].values() for key in batch.sparse.keys()], dim=1).clone()
    dense, labels = batch.dense.clone(), batch.labels.clone()
    columns = tasks if tasks is not None else list(range(labels.shape[1]))
    labels[rows, columns] = 1 - labels[rows, columns]
    if tasks is None:
        ids[rows] = (ids[rows] + 1) % 3
        dense[rows] = dense[rows] * -3 + 7
    return Batch(sparse_batch(batch.sparse.keys(), ids), dense, labels, batch.masks, batch.propensity, batch.row_id)


def assert_same_gradient(name: str, expected: torch.Tensor, actual: torch.Tensor) -> None:
    """Bit-identical, except embedding tables: EmbeddingBag's backward adds a table row's zero and non-zero
    contributions in an order that depends on which rows share an id, which moves the last bits (~1e-9)."""
    if ".ebc." in name:
        torch.testing.assert_close(actual, expected, rtol=0, atol=1e-8, msg=name)
    else:
        assert torch.equal(actual, expected), name


@pytest.mark.parametrize("weighting", [FixedWeights, UncertaintyWeighting, GradNorm])
def test_masked_rows_do_not_change_gradients(model_config, weighting, data):
    torch.manual_seed(0)
    if weighting.needs_shared_weight and model_config.build(data.schema).last_shared_weight is None:
        with pytest.raises(InputError, match="needs an architecture with a shared layer"):
            MultiTaskModule(data.schema, model_config.build, loss_weighting=weighting)
        return
    module = MultiTaskModule(data.schema, model_config.build, loss_weighting=weighting)
    batch = next(iter(data.train_dataloader()))
    batch.masks[:8] = 0  # rows 0..7 carry no label at all
    reference = gradients(module, batch)
    other_rows = gradients(module, with_rows_changed(batch, slice(0, 8)))  # their features and labels changed
    assert reference.keys() == other_rows.keys()
    for name, grad in reference.items():
        assert_same_gradient(name, grad, other_rows[name])
    # A row labelled for some tasks only: flipping its label on an unlabelled task changes nothing either.
    task = int(torch.nonzero(batch.masks[8] == 0)[0])
    flipped = gradients(module, with_rows_changed(batch, slice(8, 9), tasks=[task]))
    for name, grad in reference.items():
        assert_same_gradient(name, grad, flipped[name])
    # The check can fail: the same change on labelled rows does move the gradients.
    batch.masks[:8] = 1
    labelled = gradients(module, batch)
    changed = gradients(module, with_rows_changed(batch, slice(0, 8)))
    assert max((grad - changed[name]).abs().max().item() for name, grad in labelled.items()) > 1e-4


class SelectionHistory(Callback):
    def __init__(self) -> None:
        self.values: list[float] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.values.append(float(trainer.callback_metrics["val/selection"]))


def test_fit_selects_the_best_selection_epoch_and_logs_every_metric(data, tmp_path):
    torch.manual_seed(0)
    module = MultiTaskModule(
        data.schema,
        SMALL_MMOE,
        optimizer=functools.partial(torch.optim.Adam, lr=0.01),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5),
    )
    history = SelectionHistory()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val/selection", mode="max")
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[history, checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    assert len(history.values) == 3
    assert checkpoint.best_model_score.item() == pytest.approx(max(history.values))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3)
    metrics = trainer.callback_metrics
    for task in data.schema.task_names:
        for name in ("auc", "logloss", "ne", "calibration", "ece"):
            assert f"val/{task}/{name}" in metrics
        assert f"val/gates/{task}/expert_2" in metrics and f"val/gates/{task}/max_share" in metrics
        assert metrics[f"train/weight/{task}"].item() == 1.0
    per_channel = [f"val/channel/{c}/auc" for c in ("push", "email", "in_app", "none")]
    assert all(0 < metrics[key].item() < 1 for key in per_channel)
    auc = torch.stack([metrics[f"val/{task}/auc"] for task in data.schema.task_names])
    assert metrics["val/selection"].item() == pytest.approx(auc.nanmean().item(), abs=1e-6)
    # The toy labels depend on the features: a trained model ranks better than chance.
    assert metrics["val/selection"].item() > 0.55

    trainer.test(module, data, verbose=False)
    assert "test/selection" in trainer.callback_metrics and "test/conversion_push/auc" in trainer.callback_metrics
    data.predict_split = "validation"
    predictions = trainer.predict(module, data)
    rows = torch.cat([p["row_id"] for p in predictions])
    probabilities = torch.cat([p["predictions"] for p in predictions])
    assert rows.dtype == torch.int64 and torch.equal(rows, data.split("validation").row_id)
    assert probabilities.shape == (len(rows), len(data.schema.tasks))
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_weighted_selection_and_early_failures(data):
    architecture = functools.partial(MultiTaskModel, shared=SharedMLP, embedding_dim=4)
    module = MultiTaskModule(data.schema, architecture, selection_metric="ne:conversion_push=1")
    assert module.selection.metric == "ne" and module.selection.weights.sum().item() == 1.0
    with pytest.raises(InputError, match="unknown task 'conversion_sms'"):
        MultiTaskModule(data.schema, architecture, selection_metric="auc:conversion_sms=1")
    with pytest.raises(InputError, match="GradNorm needs an architecture with a shared layer"):
        MultiTaskModule(data.schema, SINGLE_TASK, loss_weighting=GradNorm)
