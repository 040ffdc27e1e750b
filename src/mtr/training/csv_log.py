"""metrics.csv that survives a resume: Lightning's CSV logger deletes the file when its folder is reused.

A run resumed from `last.ckpt` writes into the same run folder, and Lightning's writer removes metrics.csv
on start, so the epochs before the interruption were lost. `ResumableCSVLogger` reads the rows first and
writes them back before the new ones, without the kept rows of the first epoch the new run logs and later: a
run killed after an epoch's metrics but before its checkpoint logs that epoch again, and a fresh run (epoch
0) in a reused folder starts an empty file, as Lightning's does.
"""

from __future__ import annotations

import csv
from typing import Any

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

    def save(self) -> None:
        epochs = [float(row["epoch"]) for row in self.metrics if row.get("epoch") is not None]
        if self.kept and epochs:
            resumed_at = min(epochs)
            earlier = [
                row for row in self.kept if row.get("epoch") not in (None, "") and float(row["epoch"]) < resumed_at
            ]
            self.metrics, self.kept = [*earlier, *self.metrics], []
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
