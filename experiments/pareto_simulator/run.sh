#!/usr/bin/env bash
# Simulator Pareto experiment (from the repository root): the demo world and an MMoE trained on its train split,
# three studies on the validation split (DR and SNIPS with an unsubscribe budget, DR without), then the tables.
set -euo pipefail
MTR=.venv/bin/mtr
DATA=${DATA:-demo}
test -f "$DATA/dataset/schema.json" || {
  $MTR simulate --users 5000 --days 112 --seed 7 --out "$DATA/events"
  $MTR build-dataset --events "$DATA/events" --out "$DATA/dataset"
}
$MTR fit --config configs/experiment/sim_mmoe.yaml --data.path "$DATA/dataset" --trainer.max_epochs 4 --wandb false \
  --trainer.default_root_dir runs/pareto_model --trainer.enable_progress_bar false
STUDY="--config experiments/pareto_simulator/config.yaml --run runs/pareto_model --dataset $DATA/dataset --events $DATA/events"
$MTR pareto $STUDY --out runs/pareto_simulator/dr
$MTR pareto $STUDY --out runs/pareto_simulator/snips --estimator snips
$MTR pareto $STUDY --out runs/pareto_simulator/dr_unconstrained --constraints '{}'
.venv/bin/python experiments/pareto_simulator/report.py
cp runs/pareto_simulator/dr/front.png experiments/pareto_simulator/front_dr.png
cp runs/pareto_simulator/dr/front.csv experiments/pareto_simulator/front_dr.csv
cp runs/pareto_simulator/dr/weights.json experiments/pareto_simulator/weights_dr.json
