#!/usr/bin/env bash
# Hillstrom Pareto experiment end to end (from the repository root).
set -euo pipefail
MTR=.venv/bin/mtr
$MTR data prepare hillstrom --out data/hillstrom
$MTR fit --config experiments/pareto_hillstrom/train.yaml --trainer.max_epochs 5 --seed_everything 1 --wandb false \
  --trainer.default_root_dir runs/pareto_hillstrom --trainer.enable_progress_bar false
$MTR pareto --config experiments/pareto_hillstrom/config.yaml --run runs/pareto_hillstrom --dataset data/hillstrom \
  --out runs/pareto_hillstrom_study
.venv/bin/python experiments/pareto_hillstrom/report.py
