"""Benchmark `mtr simulate` on one core: time to simulate >= 1M sends, sends/s, peak memory; oracle speed;
and how the task-correlation knob moves the correlation of the tasks' true logits.

    OMP_NUM_THREADS=1 python scripts/bench_sim.py [--users 42000] [--days 50]
"""

from __future__ import annotations

import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "POLARS_MAX_THREADS"):
    os.environ.setdefault(variable, "1")  # one core; set before numpy/polars start their pools

import argparse  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from mtr.sim.base_rates import task_logit_correlation  # noqa: E402
from mtr.sim.config import OBJECTIVES, WorldConfig  # noqa: E402
from mtr.sim.oracle import Oracle  # noqa: E402
from mtr.sim.writer import simulate_tables, truth_tables, write_simulation  # noqa: E402


def peak_memory_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_simulation(users: int, days: int, folder: Path) -> None:
    start = time.perf_counter()
    figures = write_simulation(folder, users, days, seed=0, world=WorldConfig())
    seconds = time.perf_counter() - start
    sends = round(figures["send_share"] * figures["rows_opportunities"])
    print(f"simulate {users} users x {days} days: {figures['rows_opportunities']:,} opportunities, {sends:,} sends")
    print(f"  wall time (incl. writing Parquet): {seconds:.1f} s  ->  {sends / seconds:,.0f} sends/s")
    print(f"  peak memory: {peak_memory_mib():,.0f} MiB")
    for name in ("engagement_per_send", "unsubscribe_per_send", "mean_true_conversion", "mean_true_retention"):
        print(f"  {name}: {figures[name]:.4f}")


def bench_oracle(folder: Path, n_opportunities: int) -> None:
    start = time.perf_counter()
    oracle = Oracle.load(folder)
    loaded = time.perf_counter()
    ids = oracle.opportunities["opportunity_id"].head(n_opportunities)
    candidates = oracle.eligible_actions(ids)
    listed = time.perf_counter()
    scored = oracle.probabilities(candidates)
    done = time.perf_counter()
    print(f"oracle: load {loaded - start:.1f} s; all eligible actions of {len(ids):,} opportunities")
    print(f"  ({scored.height:,} actions): list {listed - loaded:.1f} s, evaluate {done - listed:.1f} s")


def bench_correlation(users: int, days: int) -> None:
    print(f"task_correlation -> correlation of true logits over logged sends ({users} users x {days} days)")
    pairs = [f"{a[:4]}-{b[:4]}" for i, a in enumerate(OBJECTIVES) for b in OBJECTIVES[i + 1 :]]
    print("  rho   mean|r|  " + "  ".join(pairs))
    for rho in (0.0, 0.25, 0.5, 0.75, 1.0):
        log, tables = simulate_tables(users, days, 0, WorldConfig(task_correlation=rho))
        r = task_logit_correlation(truth_tables(log, tables["opportunities"])["logged_probabilities"])
        pairs = [r[i, j] for i in range(4) for j in range(i + 1, 4)]
        print(f"  {rho:4.2f}  {np.mean(np.abs(pairs)):6.3f}  " + "  ".join(f"{v:+9.3f}" for v in pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=42_000)
    parser.add_argument("--days", type=int, default=50)
    parser.add_argument("--oracle-opportunities", type=int, default=100_000)
    args = parser.parse_args()
    print(f"threads: {os.environ['OMP_NUM_THREADS']} (numpy), polars {pl.thread_pool_size()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "events"
        bench_simulation(args.users, args.days, folder)
        bench_oracle(folder, args.oracle_opportunities)
    bench_correlation(5_000, 14)


if __name__ == "__main__":
    main()
