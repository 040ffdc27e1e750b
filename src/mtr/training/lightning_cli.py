"""`mtr fit | validate | test | predict` through LightningCLI.

Configs under `configs/` compose with repeated `--config` and dotted overrides. Every run writes its
resolved `config.yaml` and a `run_info.json` (seed, git commit, data fingerprint, versions) into its run
folder, next to `checkpoints/`. wandb logs offline unless the user configures it (WANDB_MODE).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.trainer.states import TrainerFn

from mtr.data.datamodule import MessagingDataModule
from mtr.errors import InputError
from mtr.training.callbacks import PredictionParquetWriter, RngState, save_run_info
from mtr.training.csv_log import ResumableCSVLogger
from mtr.training.module import MultiTaskModule


class SaveRunConfig(SaveConfigCallback):
    """Saves the resolved config and the run's provenance into the run folder.

    Training writes `config.yaml` and `run_info.json`; validate, test and predict write `config.{stage}.yaml`
    beside them, so that evaluating a run never overwrites the config it was trained with.
    """

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            self.config_filename = f"config.{TrainerFn(stage).value}.yaml"
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        folder = Path(trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        data = trainer.datamodule
        save_run_info(folder, self.config.get("seed_everything"), data.fingerprint if data is not None else None)


class MtrCLI(LightningCLI):
    """LightningCLI with the dataset's schema linked into the model and mtr's run-folder conventions.

    Args:
        extra_callbacks: callbacks added by Python callers (benchmarks, sweeps) on top of the config's.
    """

    def __init__(self, *args: Any, extra_callbacks: list[Callback] | None = None, **kwargs: Any) -> None:
        self.extra_callbacks = extra_callbacks or []
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.schema", "model.schema", apply_on="instantiate")
        parser.add_argument("--wandb", type=bool, default=True, help="Also log to wandb (offline by default).")
        parser.add_argument(
            "--predictions",
            type=str | None,
            default=None,
            help="predict: output Parquet file (default: RUN_DIR/predictions/SPLIT.parquet).",
        )

    def _loggers(self, root: Path, use_wandb: bool) -> list[Logger]:
        loggers: list[Logger] = [ResumableCSVLogger(save_dir=root, name="", version="")]
        if use_wandb:
            from lightning.pytorch.loggers import WandbLogger

            os.environ.setdefault("WANDB_MODE", "offline")
            os.environ.setdefault("WANDB_SILENT", "true")
            loggers.append(WandbLogger(save_dir=str(root), project="mtr", name=root.name))
        return loggers

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self.config[self.subcommand] if self.subcommand else self.config
        epochs = config.trainer.max_epochs
        # Lightning reads -1 as "no limit" and 0 as "train nothing, say nothing": neither trains a model.
        if self.subcommand == "fit" and epochs is not None and epochs < 1:
            raise InputError(f"trainer.max_epochs: must be at least 1, got {epochs}")
        root = Path(config.trainer.default_root_dir or "runs/default")
        if config.trainer.logger in (None, True):
            kwargs["logger"] = self._loggers(root, bool(config.wandb))
        extra = [RngState(), *self.extra_callbacks]
        if self.subcommand == "predict":
            data = self.datamodule
            path = config.predictions or root / "predictions" / f"{data.predict_split}.parquet"
            extra.append(PredictionParquetWriter(path, data.schema.task_names, data.schema.row_id_column))
        configured = self._get(self.config_init, "trainer", default={}).get("callbacks") or []
        kwargs["callbacks"] = [*configured, *kwargs.get("callbacks", []), *extra]
        return super().instantiate_trainer(**kwargs)


def run_training_cli(argv: list[str] | None, extra_callbacks: list[Callback] | None = None) -> MtrCLI:
    """Run a LightningCLI subcommand; argv (None: sys.argv) starts with fit, validate, test or predict."""
    return MtrCLI(
        MultiTaskModule,
        MessagingDataModule,
        save_config_callback=SaveRunConfig,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"default_root_dir": "runs/default", "use_distributed_sampler": False},
        parser_kwargs={"allow_abbrev": False},  # a misspelt option is an error, never another option
        args=argv,
        auto_configure_optimizers=False,
        extra_callbacks=extra_callbacks,
    )
