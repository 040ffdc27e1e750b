#!/usr/bin/env bash
# The simulator OPE experiment end to end (from the repository root): two logs of the same world, a model
# trained on the first, off-policy estimates on the second against the oracle's truth. A step whose output
# exists is skipped (delete data/ope_simulator and runs/ope_simulator to start over).
set -euo pipefail
MTR=.venv/bin/mtr
DATA=data/ope_simulator
[ -d $DATA/train_events ] || $MTR simulate --users 10000 --days 112 --seed 11 --out $DATA/train_events
[ -d $DATA/train_dataset ] || $MTR build-dataset --events $DATA/train_events --out $DATA/train_dataset
[ -f runs/ope_simulator/checkpoints/last.ckpt ] || $MTR fit --config configs/experiment/sim_mmoe.yaml \
  --data.path $DATA/train_dataset --trainer.max_epochs 4 --wandb false --seed_everything 1 \
  --trainer.default_root_dir runs/ope_simulator --trainer.enable_progress_bar false
[ -d $DATA/eval_events ] || $MTR simulate --users 4000 --days 112 --seed 12 --out $DATA/eval_events
[ -d $DATA/eval_dataset ] || $MTR build-dataset --events $DATA/eval_events --out $DATA/eval_dataset
$MTR ope simulator --config experiments/ope_simulator/config.yaml --out experiments/ope_simulator/results
