#!/usr/bin/env bash
# The main job end to end on the embedded default, the ground-truth simulator.
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-demo}
MTR=.venv/bin/mtr
start=$(date +%s)

$MTR simulate --users 5000 --days 28 --seed 7 --out "$DEMO_DIR/events"
$MTR build-dataset --events "$DEMO_DIR/events" --out "$DEMO_DIR/dataset"

echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "  raw event logs:   $DEMO_DIR/events"
echo "  training dataset: $DEMO_DIR/dataset (schema: $DEMO_DIR/dataset/schema.json)"
