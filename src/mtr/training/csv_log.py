"""metrics.csv that survives a resume: Lightning's CSV logger deletes the file when its folder is reused.

A run resumed from `last.ckpt` writes into the same run folder, and Lightning's writer removes metrics.csv
on start, so the epochs before the interruption were lost. `ResumableCSVLogger` reads the rows first and
writes them back with the new ones; `KeepEarlierEpochs` drops the kept rows of the epoch the run resumes
at and later (an interruption after an epoch's metrics but before its checkpoint would log that epoch twice).
"""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class KeepingWriter(ExperimentWriter):
    """Lightning's writer, except that the rows of an existing metrics.csv are kept until the first save."""

    def _check_log_dir_exists(self) -> None:
        self.kept: list[dict[str, Any]] = []
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.kept = list(csv.DictReader(file))
            self._fs.rm_file(self.metrics_file_path)  # rewritten, kept rows first, at the first save

    def keep_before(self, epoch: int) -> None:
        """Keep only the rows of epochs before `epoch` (rows without an epoch go with them)."""
        self.kept = [row for row in self.kept if row.get("epoch") not in (None, "") and float(row["epoch"]) < epoch]

    def save(self) -> None:
        if self.kept:
            self.metrics, self.kept = [*self.kept, *self.metrics], []
        super().save()


class ResumableCSVLogger(CSVLogger):
    """CSVLogger whose metrics.csv keeps the epochs before a resume."""

    @property
    @rank_zero_experiment
    def experiment(self) -> KeepingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = KeepingWriter(log_dir=self.log_dir)
        return self._experiment


class KeepEarlierEpochs(Callback):
    """At the start of training (after a checkpoint is restored), keep the logged rows of earlier epochs only: a
    fresh run (epoch 0) starts an empty file, a resumed one keeps the epochs its checkpoint holds."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger) and isinstance(logger.experiment, KeepingWriter):
                logger.experiment.keep_before(trainer.current_epoch)
