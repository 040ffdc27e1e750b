"""Benchmark the Pareto study: N trials over synthetic logged opportunities, against the 2-minute target.

    python scripts/bench_pareto.py --opportunities 1000000 --candidates 10 --trials 200

Uses the synthetic candidates of scripts/bench_ranking.py (random probabilities, a uniform logger),
prints the one-off set-up (data, fusion terms, pruning, buckets), the study's total and per-trial time
on an SQLite storage, the time of one trial's evaluation alone, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import optuna

from bench_ranking import synthetic  # scripts/ is on the path of a script run from it
from mtr.ope.estimators import ESTIMATORS
from mtr.ope.evaluator import PolicyEvaluator
from mtr.ope.logged_feedback import SEND_VOLUME
from mtr.pareto.spec import ParetoSpec, SamplerSpec
from mtr.pareto.study import open_study, run_study
from mtr.schema import OBJECTIVES
from mtr.scoring.policy import PolicyConfig
from mtr.scoring.weights import FusionWeights

TARGET_S = 120.0
SPACE = {
    "engagement": {"type": "float", "low": 0.01, "high": 2.0, "log": True},
    "retention": {"type": "float", "low": 0.01, "high": 2.0, "log": True},
    "unsubscribe": {"type": "float", "low": 0.1, "high": 20.0, "log": True},
    "send_cost": {"type": "float", "low": 0.001, "high": 0.2, "log": True},
    "threshold": {"type": "float", "low": 0.0, "high": 0.2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=10, help="mean send candidates per opportunity")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--estimator", default="dr", choices=list(ESTIMATORS))
    parser.add_argument("--no-prune", action="store_true")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    inputs, feedback = synthetic(args.opportunities, args.candidates)
    feedback = replace(feedback, reward_names=(*OBJECTIVES, SEND_VOLUME))  # the study's reward names
    data_s = time.perf_counter() - start
    evaluator = PolicyEvaluator(inputs, feedback, prune=not args.no_prune, estimators=[args.estimator])
    setup_s = time.perf_counter() - start - data_s
    print(f"{args.opportunities:,} opportunities, {inputs.groups.n_candidates:,} candidates")
    print(f"set-up: synthetic data {data_s:.2f} s; fusion terms, pruning, buckets, estimator terms {setup_s:.2f} s")
    print(f"candidates kept after pruning dominated ones: {evaluator.kept:,}")
    weights = FusionWeights(conversion=1.0, engagement=0.2, retention=0.3, unsubscribe=2.0, send_cost=0.02)
    t0 = time.perf_counter()
    for _ in range(5):
        evaluator.estimate(evaluator.decide(weights, PolicyConfig(threshold=0.01)), args.estimator)
    eval_s = (time.perf_counter() - t0) / 5
    print(f"one trial's evaluation (fuse + policy + {args.estimator.upper()}): {eval_s:.3f} s")
    spec = ParetoSpec(params=SPACE, fixed={"conversion": 1.0}, estimator=args.estimator, sampler=SamplerSpec(seed=0))
    spec = spec.resolve(inputs.objectives, feedback.reward_names)
    with tempfile.TemporaryDirectory() as folder:
        study = open_study(spec, "bench", f"sqlite:///{Path(folder) / 'study.db'}")
        t0 = time.perf_counter()
        run_study(study, evaluator, spec, args.trials)
        study_s = time.perf_counter() - t0
        front = len(study.best_trials)
    print(
        f"study: {args.trials} trials in {study_s:.1f} s ({study_s / args.trials:.3f} s per trial, "
        f"{study_s - args.trials * eval_s:.1f} s of it Optuna and SQLite); Pareto front: {front} trials"
    )
    print(f"target {TARGET_S:.0f} s: {study_s / TARGET_S:.2f} of it (set-up excluded: {setup_s:.1f} s once)")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
