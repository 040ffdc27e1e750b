"""Run one training config over several seeds: fit, select the best checkpoint on validation, test it.

Used by the experiments under `experiments/`; the test split is only ever read after model selection.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtr.training.lightning_cli import run_training_cli


def fit_and_test(
    configs: Sequence[Path | str], run_dir: Path, seed: int, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Fit with `configs` (composed in order) and `seed`, then test the checkpoint with the best val/selection.

    Returns:
        {"seed", "best_checkpoint", "val_selection", "epochs", **test metrics} with test metric names as logged.
    """
    argv = ["fit", *[arg for config in configs for arg in ("--config", str(config))]]
    argv += ["--seed_everything", str(seed), "--trainer.default_root_dir", str(run_dir), "--wandb", "false"]
    argv += ["--trainer.enable_progress_bar", "false", *overrides]
    cli = run_training_cli(argv)
    checkpoint = cli.trainer.checkpoint_callback
    test_metrics = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)[0]
    return {
        "seed": seed,
        "best_checkpoint": str(checkpoint.best_model_path),
        "val_selection": float(checkpoint.best_model_score),
        "epochs": cli.trainer.current_epoch,
        **{name: float(value) for name, value in test_metrics.items()},
    }


def summarise(runs: Sequence[dict[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation of each metric over runs."""
    summary = {}
    for metric in metrics:
        values = [run[metric] for run in runs]
        summary[metric] = {
            "mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values),
        }
    return summary
