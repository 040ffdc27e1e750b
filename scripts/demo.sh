#!/usr/bin/env bash
# The main job end to end on the embedded default, the ground-truth simulator.
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-demo}
MTR=.venv/bin/mtr
start=$(date +%s)

$MTR simulate --users 5000 --days 28 --seed 7 --out "$DEMO_DIR/events"
$MTR build-dataset --events "$DEMO_DIR/events" --out "$DEMO_DIR/dataset"
$MTR fit --config configs/experiment/sim_mmoe.yaml --data.path "$DEMO_DIR/dataset" \
  --trainer.max_epochs 4 --trainer.default_root_dir "$DEMO_DIR/run" --trainer.enable_progress_bar false
$MTR predict --config "$DEMO_DIR/run/config.yaml" --ckpt_path "$DEMO_DIR/run/checkpoints/last.ckpt" \
  --trainer.default_root_dir "$DEMO_DIR/run" --trainer.logger false

echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "  raw event logs:   $DEMO_DIR/events"
echo "  training dataset: $DEMO_DIR/dataset (schema: $DEMO_DIR/dataset/schema.json)"
echo "  trained MMoE:     $DEMO_DIR/run (config.yaml, run_info.json, metrics.csv, checkpoints/)"
echo "  predictions:      $DEMO_DIR/run/predictions/test.parquet"
