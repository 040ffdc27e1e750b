"""Benchmark: training samples per second for the census MMoE config (8 experts of width 16, embedding 4,
batch 1024) on 2 CPU threads, through the same LightningModule and DataModule as `mtr fit`.

Prints the time of each training epoch (validation excluded) over the 199,523 census training rows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

from mtr.training.lightning_cli import run_training_cli


class EpochTimer(pl.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("data/census"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not (args.data / "schema.json").exists():
        subprocess.run(
            [sys.executable, "-m", "mtr.cli", "data", "prepare", "census", "--out", str(args.data)], check=True
        )
    timer = EpochTimer()
    cli = run_training_cli(
        [
            "fit",
            "--config",
            "configs/experiment/census_mmoe.yaml",
            "--data.path",
            str(args.data),
            "--trainer.max_epochs",
            str(args.epochs),
            "--trainer.limit_val_batches",
            "0",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_checkpointing",
            "false",
            "--trainer.callbacks",
            "[]",
            "--trainer.logger",
            "false",
            "--wandb",
            "false",
            "--trainer.default_root_dir",
            "runs/bench_train",
        ],
        extra_callbacks=[timer],
    )
    rows = len(cli.datamodule.split("train"))
    steady = timer.seconds[1:] or timer.seconds  # the first epoch includes warm-up
    best = min(steady)
    print(f"census MMoE, batch {cli.datamodule.batch_size}, {args.threads} threads, {rows:,} rows/epoch")
    print("epoch seconds: " + ", ".join(f"{s:.2f}" for s in timer.seconds))
    print(f"best epoch {best:.2f} s = {rows / best:,.0f} samples/s (median {sorted(steady)[len(steady) // 2]:.2f} s)")


if __name__ == "__main__":
    main()
