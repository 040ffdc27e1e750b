#!/usr/bin/env bash
# The main job end to end on the embedded default, the ground-truth simulator.
set -euo pipefail
DEMO_DIR=${DEMO_DIR:-demo}
start=$(date +%s)
# Every step prints its wall time, so a slow step shows.
MTR() { local t0=$(date +%s); .venv/bin/mtr "$@"; echo "[demo] mtr $1: $(( $(date +%s) - t0 )) s"; }

MTR simulate --users 5000 --days 112 --seed 7 --out "$DEMO_DIR/events"
MTR build-dataset --events "$DEMO_DIR/events" --out "$DEMO_DIR/dataset"
MTR fit --config configs/experiment/sim_mmoe.yaml --data.path "$DEMO_DIR/dataset" \
  --trainer.max_epochs 4 --trainer.default_root_dir "$DEMO_DIR/run" --trainer.enable_progress_bar false
# The checkpoint selected on the validation split's mean AUC (val/selection) is the one used from here on.
BEST=$(ls "$DEMO_DIR"/run/checkpoints/best-*.ckpt | head -n 1)
MTR predict --config "$DEMO_DIR/run/config.yaml" --ckpt_path "$BEST" \
  --trainer.default_root_dir "$DEMO_DIR/run" --trainer.logger false

# Pareto weighting: fusion weights and send cost tuned on the validation split's off-policy estimates.
MTR pareto --config configs/pareto/sim.yaml --run "$DEMO_DIR/run" --dataset "$DEMO_DIR/dataset" \
  --events "$DEMO_DIR/events" --checkpoint "$BEST" --out "$DEMO_DIR/pareto"

# Serving: the checkpoint and the chosen operating point as one artifact, then scores of raw candidate rows.
WEIGHTS="$DEMO_DIR/pareto/weights.json"
test -f "$WEIGHTS" || { echo "demo: $WEIGHTS not found (mtr pareto writes it)" >&2; exit 1; }
MTR export --checkpoint "$BEST" --weights "$WEIGHTS" --out "$DEMO_DIR/artifact"
MTR candidates --dataset "$DEMO_DIR/dataset" \
  --opportunities 1000 --out "$DEMO_DIR/candidates.parquet"
MTR score --artifact "$DEMO_DIR/artifact" --input "$DEMO_DIR/candidates.parquet" \
  --out "$DEMO_DIR/scores.parquet" --id_columns '[candidate_id]'

# The long-term track at small scale: a policy learned from the logs for 8 weeks of active days where sends wear
# users out, and every policy valued by fitted-Q evaluation and per-decision DR beside the simulator's truth.
MTR long-term --config configs/long_term/sim.yaml --users 300 --out "$DEMO_DIR/long_term"

echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "  raw event logs:   $DEMO_DIR/events"
echo "  training dataset: $DEMO_DIR/dataset (schema: $DEMO_DIR/dataset/schema.json)"
echo "  trained MMoE:     $DEMO_DIR/run (config.yaml, run_info.json, metrics.csv, checkpoints/)"
echo "  predictions:      $DEMO_DIR/run/predictions/test.parquet"
echo "  Pareto front:     $DEMO_DIR/pareto/front.png (front.html, front.csv); chosen weights: $WEIGHTS"
echo "  serving artifact: $DEMO_DIR/artifact (program.pt2, program_aoti.pt2 if compiled, manifest.json)"
echo "  scores:           $DEMO_DIR/scores.parquet"
echo "  long-term track:  $DEMO_DIR/long_term (results.json; the learned policy's artifact in policy/)"
