"""Benchmark `mtr build-dataset` on a large event log: wall time and peak memory (ru_maxrss).

Generation and each build run in their own child process, so each peak-memory figure is that of
the build alone. Default: about 10M opportunities (400k users x 28 days x 0.9), built with 8 and
16 user partitions.

    python scripts/bench_build.py                          # synthetic 10M-opportunity log
    python scripts/bench_build.py --users 20000 --partitions 1 4
    python scripts/bench_build.py --simulator --users 50000  # the log of `mtr simulate` instead
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _generate(args: argparse.Namespace, events: Path) -> dict:
    start = time.perf_counter()
    if args.simulator:
        from mtr.cli import main

        main(["simulate", "--users", str(args.users), "--days", str(args.days), "--seed", "0", "--out", str(events)])
    else:
        from mtr.data.synthetic import synthetic_event_log, write_event_log

        tables, log_start, log_end = synthetic_event_log(args.users, args.days, args.rate, seed=0)
        write_event_log(events, tables, log_start, log_end)
    rows = {path.stem: pl.scan_parquet(path).select(pl.len()).collect().item() for path in events.glob("*.parquet")}
    return {"seconds": time.perf_counter() - start, "max_rss_mb": _peak_rss_mb(), "rows": rows}


def _build(events: Path, out: Path, partitions: int) -> dict:
    from mtr.data.build import BuildConfig, build_dataset_from_events

    start = time.perf_counter()
    # Every day in a split, as before the matured split rule: the figure measures the build's throughput over
    # the whole log, comparable across versions (a 28-day log has no day whose retention label matures).
    config = BuildConfig(partitions=partitions, matured_splits=False, embargo_days=1)
    schema = build_dataset_from_events(events, out, config)
    seconds = time.perf_counter() - start
    size = sum(path.stat().st_size for path in out.iterdir())
    return {"seconds": seconds, "max_rss_mb": _peak_rss_mb(), "rows": schema.metadata["rows"], "out_mb": size / 2**20}


def _child(stage: str, args: argparse.Namespace, *extra: str) -> dict:
    command = [sys.executable, __file__, "--stage", stage, "--work", str(args.work), "--users", str(args.users)]
    command += [
        "--days",
        str(args.days),
        "--rate",
        str(args.rate),
        *(["--simulator"] if args.simulator else []),
        *extra,
    ]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=400_000)
    parser.add_argument("--days", type=int, default=28)
    parser.add_argument("--rate", type=float, default=0.9, help="opportunities per user and day (synthetic log)")
    parser.add_argument("--partitions", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--simulator", action="store_true", help="generate the log with `mtr simulate`")
    parser.add_argument("--work", type=Path, default=Path("/tmp/mtr-bench-build"))
    parser.add_argument("--keep", action="store_true", help="keep the generated log and datasets")
    parser.add_argument("--stage", choices=["generate", "build"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    events = args.work / "events"
    if args.stage == "generate":
        print(json.dumps(_generate(args, events)))
        return
    if args.stage == "build":
        print(json.dumps(_build(events, args.work / f"dataset-{args.partitions[0]}", args.partitions[0])))
        return

    shutil.rmtree(args.work, ignore_errors=True)
    generated = _child("generate", args)
    source = "mtr simulate" if args.simulator else "synthetic (mtr.data.synthetic)"
    print(f"event log: {source}, {args.users:,} users x {args.days} days, generated in {generated['seconds']:.1f} s")
    print("  rows: " + ", ".join(f"{table} {count:,}" for table, count in sorted(generated["rows"].items())))
    opportunities = generated["rows"]["opportunities"]
    print(f"{'partitions':>10} {'build s':>9} {'opps/s':>11} {'peak RSS MB':>12} {'output MB':>10}")
    for partitions in args.partitions:
        built = _child("build", args, "--partitions", str(partitions))
        assert sum(built["rows"].values()) == opportunities
        rate = opportunities / built["seconds"]
        memory, size = built["max_rss_mb"], built["out_mb"]
        print(f"{partitions:>10} {built['seconds']:>9.1f} {rate:>11,.0f} {memory:>12,.0f} {size:>10,.0f}")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
