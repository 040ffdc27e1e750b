# The front door. `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: setup demo test test-all lint format lock bench-sim bench-build bench-data bench-train bench-pareto reproduce-census reproduce-ab reproduce-task-correlation reproduce-oracle-gap reproduce-long-term-world reproduce-long-term-policies tune clean

setup: $(STAMP)

# torch first, so that nothing pulls a CUDA build; torchrec and fbgemm-gpu-cpu without their
# metadata's dependencies (CUDA fbgemm-gpu, torchmetrics==1.0.3); then mtr with pinned versions.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps torchrec==1.8.0 fbgemm-gpu-cpu==1.8.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	@if $(BIN)/pip list 2>/dev/null | grep -qi '^nvidia-'; then echo "error: a CUDA package was installed"; exit 1; fi
	touch $@

demo: $(STAMP)
	DEMO_DIR=$(DEMO_DIR) bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/pytest -q -m "not slow and not gpu"

test-all: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Regenerate constraints.txt from the current environment (after changing dependencies).
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v -E '^(torchrec|fbgemm-gpu-cpu|fbgemm_gpu-cpu)==' > constraints.txt

# Simulator experiments (each writes README.md and results.json in its folder; cached runs resume).
reproduce-task-correlation: $(STAMP)
	$(BIN)/python experiments/task_correlation/run.py

reproduce-oracle-gap: $(STAMP)
	$(BIN)/python experiments/oracle_gap/run.py

# The long-term knob's true effects and whole-policy rollouts over 3 seeds: experiments/long_term/ (about 25 s).
reproduce-long-term-world: $(STAMP)
	$(BIN)/python experiments/long_term/world.py

# Policies learned and valued from logs (fitted-Q) against the truth, 3 seeds x 2 strengths: experiments/long_term/policies/.
reproduce-long-term-policies: $(STAMP)
	$(BIN)/python experiments/long_term/policies/run.py

reproduce-census: $(STAMP)
	@test -f data/census/schema.json || $(BIN)/mtr data prepare census --out data/census
	$(BIN)/python experiments/census_mmoe/run.py

bench-train: $(STAMP)
	@test -f data/census/schema.json || $(BIN)/mtr data prepare census --out data/census
	$(BIN)/python scripts/bench_train.py

bench-sim: $(STAMP)
	$(BIN)/python scripts/bench_sim.py

bench-build: $(STAMP)
	$(BIN)/python scripts/bench_build.py

bench-data: $(STAMP)
	$(BIN)/python scripts/bench_data.py

# 200 Pareto-study trials over 1M synthetic logged opportunities (~11M candidates), against the 2-minute target.
bench-pareto: $(STAMP)
	$(BIN)/python scripts/bench_pareto.py

# Memory and time of scoring a log's candidates for a study, in chunks against all at once, at two sizes.
# Needs `make demo` first (its run and dataset).
.PHONY: bench-scoring
bench-scoring: $(STAMP)
	$(BIN)/python scripts/bench_scoring.py --run $(DEMO_DIR)/run --dataset $(DEMO_DIR)/dataset

# Serving latency (200-candidate request, p50/p99) and throughput (100k candidates): eager, .pt2, AOTInductor.
# Needs `make demo` first (its run, events and dataset).
.PHONY: bench-serve
bench-serve: $(STAMP)
	$(BIN)/python scripts/bench_serve.py --run $(DEMO_DIR)/run --events $(DEMO_DIR)/events --dataset $(DEMO_DIR)/dataset

# A/B analyses of the public experiments: experiments/ab_*/results/ (README.md, results.json, plots).
reproduce-ab: $(STAMP)
	for name in cookie_cats hillstrom social_pressure; do \
		$(BIN)/mtr ab analyze --config experiments/ab_$$name/config.yaml --out experiments/ab_$$name/results || exit 1; \
	done

# Hyperparameter sweep of MMoE on the demo dataset (run `make demo` first); rerun to resume. TUNE_ARGS adds options.
tune: $(STAMP)
	$(BIN)/mtr tune --config configs/tune/sim_mmoe.yaml --workers 2 $(TUNE_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
