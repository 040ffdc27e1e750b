#!/usr/bin/env bash
# The simulator OPE experiment end to end (from the repository root): two logs of the same world, a model
# trained on the first, off-policy estimates on the second against the oracle's truth.
set -euo pipefail
MTR=.venv/bin/mtr
DATA=data/ope_simulator
$MTR simulate --users 10000 --days 28 --seed 11 --out $DATA/train_events
$MTR build-dataset --events $DATA/train_events --out $DATA/train_dataset
$MTR fit --config configs/experiment/sim_mmoe.yaml --data.path $DATA/train_dataset --trainer.max_epochs 4 \
  --wandb false --seed_everything 1 --trainer.default_root_dir runs/ope_simulator --trainer.enable_progress_bar false
$MTR simulate --users 4000 --days 35 --seed 12 --out $DATA/eval_events
$MTR build-dataset --events $DATA/eval_events --out $DATA/eval_dataset
$MTR ope simulator --config experiments/ope_simulator/config.yaml --out experiments/ope_simulator/results
