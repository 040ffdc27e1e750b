"""The one LightningModule for every architecture: masked losses, loss weighting, metrics, prediction.

The architecture is any `nn.Module` built from the schema whose forward maps (sparse KJT, dense [B, D])
to raw outputs [B, n_tasks]: logits of binary tasks, values of continuous ones (`mtr.models.outputs`).
If it also has `forward_with_gates`, gate usage is logged in evaluation; if it has `last_shared_weight`,
gradient-based loss weighting can use it. Losses and metrics follow each task's objective kind.

Logged keys (stage is "val" or "test"): "train/loss", "train/{task}/loss", "train/weight/{task}",
"{stage}/{task}/{auc,logloss,ne,calibration,ece}" for binary tasks,
"{stage}/{task}/{rmse,mae,mean_error,calibration}" for continuous ones, "{stage}/channel/{channel}/auc",
"{stage}/gates/{gate}/{expert_k,max_share,entropy}" and "{stage}/selection", the composite criterion
(higher is better) that checkpointing and early stopping should monitor with mode "max".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.types import OptimizerLRScheduler
from torch import nn
from torchrec.sparse.jagged_tensor import KeyedJaggedTensor

from mtr.data.batch import Batch
from mtr.errors import InputError
from mtr.models.outputs import binary_tasks, task_predictions
from mtr.schema import SCHEMA_CHECKPOINT_KEY, DatasetSchema
from mtr.training.losses import FixedWeights, LossWeighting, masked_losses, task_loss_names
from mtr.training.metrics import METRICS_BY_KIND, GateUsage, Selection, channel_means, metrics_by_kind

SELECTION_KEY = "val/selection"


class MultiTaskModule(pl.LightningModule):
    """Trains and evaluates a multi-task architecture on a `MessagingDataModule`.

    Args:
        schema: the dataset schema (tasks, channels, features); linked from the DataModule by the CLI.
        architecture: builds the network from the schema, e.g. `functools.partial(MultiTaskModel,
            shared=GatedExperts)` or, in a config, `{class_path: mtr.models.frame.MultiTaskModel,
            init_args: {shared: {class_path: mtr.models.mmoe.GatedExperts}, ...}}` (see configs/model/).
        loss_weighting: builds the loss weighting from the schema: `FixedWeights`,
            `UncertaintyWeighting` or `GradNorm` (from `mtr.training.losses`).
        optimizer: builds the optimiser from the parameters (default Adam, lr 1e-3).
        scheduler: builds an optional learning-rate scheduler from the optimiser; it is stepped per
            epoch and may monitor "val/selection".
        selection_metric: the composite validation criterion logged as "val/selection", e.g.
            "auc_mean", "ne_mean" or "auc:conversion_push=2,unsubscribe_push=1" (see `Selection`).
        calibration_bins: number of equal-width bins of the expected calibration error.
    """

    def __init__(
        self,
        schema: DatasetSchema,
        architecture: Callable[[DatasetSchema], nn.Module],
        loss_weighting: Callable[[DatasetSchema], LossWeighting] = FixedWeights,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        selection_metric: str = "auc_mean",
        calibration_bins: int = 10,
    ) -> None:
        super().__init__()
        # Only plain values go into checkpoints (they load with weights_only=True, and LightningCLI can parse
        # them back); the schema comes from the data and the callables are rebuilt from the saved config.
        self.save_hyperparameters(ignore=["schema", "architecture", "loss_weighting", "optimizer", "scheduler"])
        self.schema = schema
        self.model = architecture(schema)
        self.loss_weighting = loss_weighting(schema)
        if self.loss_weighting.needs_shared_weight and self._shared_weight() is None:
            raise InputError(
                f"loss_weighting {type(self.loss_weighting).__name__} needs an architecture with a shared layer "
                f"(last_shared_weight); {type(self.model).__name__} has none"
            )
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.task_losses = task_loss_names(schema)
        # Which outputs are logits; not saved, it follows from the schema that every checkpoint carries.
        self.register_buffer("binary", binary_tasks(schema), persistent=False)
        kinds = ["binary" if b else "continuous" for b in self.binary.tolist()]
        self.task_metric_names = [METRICS_BY_KIND[kind] for kind in kinds]
        self.selection = Selection.parse(selection_metric, schema.task_names, kinds)
        self.calibration_bins = calibration_bins
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._gate_usage = GateUsage()
        self._train_loss_sum = torch.zeros(len(schema.tasks))
        self._train_steps = 0

    def forward(self, sparse: KeyedJaggedTensor, dense: torch.Tensor) -> torch.Tensor:
        """Raw outputs [B, n_tasks] in schema task order (logits of binary tasks)."""
        return self.model(sparse, dense)

    # Training

    def compute_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted training loss (scalar) and the per-task masked losses [T]."""
        outputs = self.model(batch.sparse, batch.dense)
        task_losses, labelled = masked_losses(outputs, batch.labels, batch.masks, self.task_losses)
        return self.loss_weighting(task_losses, labelled, self._shared_weight()), task_losses

    def _shared_weight(self) -> torch.Tensor | None:
        return getattr(self.model, "last_shared_weight", None)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, task_losses = self.compute_loss(batch)
        # Per-task losses are summed on device and logged once per epoch: no per-step host sync.
        self._train_loss_sum = self._train_loss_sum.to(loss.device) + task_losses.detach()
        self._train_steps += 1
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch))
        return loss

    def on_train_epoch_end(self) -> None:
        mean_losses = self._train_loss_sum / max(self._train_steps, 1)
        weights = self.loss_weighting.task_weights()
        values = {f"train/{name}/loss": mean_losses[i] for i, name in enumerate(self.schema.task_names)}
        values.update({f"train/weight/{name}": weights[i] for i, name in enumerate(self.schema.task_names)})
        self.log_dict(values, sync_dist=True)
        self._train_loss_sum = torch.zeros_like(self._train_loss_sum)
        self._train_steps = 0

    def configure_optimizers(self) -> OptimizerLRScheduler:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": SELECTION_KEY}}

    # Evaluation: predictions are kept for the epoch, metrics computed once at its end.

    def _evaluation_step(self, batch: Batch) -> None:
        if hasattr(self.model, "forward_with_gates"):
            outputs, gates = self.model.forward_with_gates(batch.sparse, batch.dense)
            self._gate_usage.update(gates)
        else:
            outputs = self.model(batch.sparse, batch.dense)
        self._outputs.append((task_predictions(outputs, self.binary).detach(), batch.labels, batch.masks))

    def _start_evaluation(self) -> None:
        self._outputs = []
        self._gate_usage = GateUsage()

    def _end_evaluation(self, stage: str) -> None:
        if not self._outputs:
            return
        columns = zip(*self._outputs, strict=True)
        predictions, labels, masks = (self._gather_rows(torch.cat(parts)) for parts in columns)
        metrics = metrics_by_kind(predictions, labels, masks, self.binary, self.calibration_bins)
        values: dict[str, torch.Tensor] = {}
        for i, name in enumerate(self.schema.task_names):
            values.update({f"{stage}/{name}/{metric}": metrics[metric][i] for metric in self.task_metric_names[i]})
        for channel, auc in channel_means(metrics["auc"], self.schema).items():
            values[f"{stage}/channel/{channel}/auc"] = auc
        values.update({f"{stage}/gates/{key}": value for key, value in self._gate_usage.compute().items()})
        values[f"{stage}/selection"] = self.selection.score(metrics)
        # Rows were gathered from every rank, so the values agree across ranks already.
        self.log_dict({key: value.float() for key, value in values.items()})
        self._start_evaluation()

    def _gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """All ranks' rows [N_total, ...] (exact AUC needs every prediction); pads uneven ranks."""
        if self.trainer.world_size == 1:
            return rows
        counts = self.all_gather(torch.tensor(rows.shape[0], device=rows.device))
        padded = torch.zeros((int(counts.max()), *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
        padded[: rows.shape[0]] = rows
        gathered = self.all_gather(padded)  # [world, max_rows, ...]
        return torch.cat([gathered[rank, : int(count)] for rank, count in enumerate(counts)])

    def on_validation_epoch_start(self) -> None:
        self._start_evaluation()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._end_evaluation("val")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation()

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def on_test_epoch_end(self) -> None:
        self._end_evaluation("test")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the dataset schema (features, vocabularies, tasks) in every checkpoint, as plain JSON values,
        so that a checkpoint alone is enough to rebuild the model's inputs (`mtr.scoring.candidates`)."""
        checkpoint[SCHEMA_CHECKPOINT_KEY] = self.schema.to_dict()

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        """Returns {"row_id": [B] int64, "predictions": [B, n_tasks] float32}: probabilities of binary tasks,
        values of continuous ones."""
        outputs = self.model(batch.sparse, batch.dense)
        return {"row_id": batch.row_id, "predictions": task_predictions(outputs, self.binary)}
