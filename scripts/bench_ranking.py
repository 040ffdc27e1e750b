"""Benchmark one Pareto-study trial (fuse + policy + off-policy estimates) on synthetic candidates.

    python scripts/bench_ranking.py --opportunities 1000000 --candidates 50 --trials 5

Prints the one-off set-up time and the per-trial time of each step for a deterministic and a softmax
policy, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from mtr.ope.estimators import evaluate
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.schema import OBJECTIVES
from mtr.scoring.fusion import FusionInputs, fuse
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.policy import PolicyConfig, decide
from mtr.scoring.weights import FusionWeights


def synthetic(opportunities: int, candidates: int, seed: int = 0) -> tuple[FusionInputs, LoggedFeedback]:
    """Groups of 1 + ~U(1, 2 * candidates - 1) candidates, random probabilities, a uniform logger."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 2 * candidates, opportunities) + 1
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    channel = rng.integers(0, NONE_CODE, offsets[-1]).astype(np.int8)
    channel[offsets[:-1]] = NONE_CODE
    groups = CandidateGroups.build(
        sizes, channel, np.arange(opportunities) % 200_000, np.arange(opportunities) // 200_000
    )
    probabilities = rng.uniform(0, 0.3, (offsets[-1], 4)).astype(np.float32)
    probabilities[np.ix_(offsets[:-1], [1, 3])] = 0  # "none" has no engagement or unsubscribe
    logged = offsets[:-1] + rng.integers(0, sizes)
    rewards = (rng.random((opportunities, 4)) < 0.1).astype(np.float64)
    feedback = LoggedFeedback(
        groups, logged, 1.0 / sizes, rewards, np.ones((opportunities, 4), bool), probabilities, ("c", "e", "r", "u")
    )
    return FusionInputs(groups, probabilities), feedback.with_send_volume()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opportunities", type=int, default=1_000_000)
    parser.add_argument("--candidates", type=int, default=50, help="mean send candidates per opportunity")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    inputs, feedback = synthetic(args.opportunities, args.candidates)
    weights = FusionWeights(conversion=10.0, engagement=1.0, retention=2.0, unsubscribe=20.0, send_cost=0.01)
    fuse(inputs, weights)  # the weight-independent terms are computed once, here
    print(f"{args.opportunities:,} opportunities, {inputs.groups.n_candidates:,} candidates")
    print(f"set-up (synthetic data, groups, fusion terms): {time.perf_counter() - start:.2f} s")
    rng = np.random.default_rng(1)
    for label, config in (("deterministic", PolicyConfig(threshold=0.05)), ("softmax", PolicyConfig(0.05, 0.05))):
        steps = np.zeros(3)
        for _ in range(args.trials):
            trial = FusionWeights(dict(zip(OBJECTIVES, rng.uniform(0, 10, 4), strict=True)), send_cost=0.01)
            t0 = time.perf_counter()
            scores = fuse(inputs, trial)
            t1 = time.perf_counter()
            decision = decide(inputs.groups, scores, config)
            t2 = time.perf_counter()
            evaluate(feedback, decision)
            steps += [t1 - t0, time.perf_counter() - t2, t2 - t1]
        fuse_s, ope_s, policy_s = steps / args.trials
        print(
            f"{label:>13} trial: {fuse_s + policy_s + ope_s:.3f} s "
            f"(fuse {fuse_s:.3f}, policy {policy_s:.3f}, OPE {ope_s:.3f})"
        )
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
