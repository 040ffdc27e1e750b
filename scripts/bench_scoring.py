"""Peak memory and time of scoring a log's candidates for a study: in chunks (the default) against all at once.

Each mode and size runs in its own process (its peak resident memory is its own), side by side in one
invocation; the figures to read are how memory grows with the number of candidates in each mode, and the
ratios. Needs `make demo` first (its run and dataset, whose candidates file the simulator's candidate table
filled).

    python scripts/bench_scoring.py --run demo/run --dataset demo/dataset [--splits validation validation,test]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def score_once(run: Path, dataset: Path, split: str, chunk: int) -> dict[str, float]:
    """Score every candidate of the split's decisions in chunks of about `chunk` candidates; wall time and peak RSS."""
    from mtr.data.candidates import read_dataset_candidates
    from mtr.ope.problem import scored_candidates, split_rows
    from mtr.ope.scorers import load_scorers
    from mtr.scoring.candidates import CandidateTable

    rows, _ = split_rows(dataset, split)
    candidates = CandidateTable.from_frame(read_dataset_candidates(dataset, rows["row_id"]))
    scorers = load_scorers([run], "last.ckpt", ["validation"])
    for scorer in scorers:  # the model loaded before the baseline: what is measured is the scoring
        _ = scorer.model
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    predicted, _ = scored_candidates(scorers, candidates, rows, f"split {split}", chunk=chunk)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "candidates": float(predicted.shape[0]),
        "seconds": seconds,
        "peak_rss_mib": peak,
        "rss_before_scoring_mib": before,
        "scoring_rss_mib": peak - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("demo/run"))
    parser.add_argument("--dataset", type=Path, default=Path("demo/dataset"))
    parser.add_argument("--splits", nargs="+", default=["validation", "validation,test"])
    parser.add_argument("--chunk", type=int, default=0, help="internal: score in this process with this chunk")
    args = parser.parse_args()
    if args.chunk:
        print(json.dumps(score_once(args.run, args.dataset, args.splits[0], args.chunk)))
        return
    from mtr.ope.problem import SCORING_CHUNK

    modes = {"chunked": SCORING_CHUNK, "all at once": 10**12}
    results: dict[tuple[str, str], dict[str, float]] = {}
    for split in args.splits:
        for name, chunk in modes.items():
            command = [sys.executable, __file__, "--run", str(args.run), "--dataset", str(args.dataset)]
            command += ["--splits", split, "--chunk", str(chunk)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            results[split, name] = json.loads(done.stdout.strip().splitlines()[-1])
    for split in args.splits:
        chunked, whole = results[split, "chunked"], results[split, "all at once"]
        print(f"split {split}: {chunked['candidates']:,.0f} candidates")
        for name in modes:
            r = results[split, name]
            print(f"  {name:<12} {r['seconds']:7.1f} s   +{r['scoring_rss_mib']:6.0f} MiB resident while scoring")
        memory, seconds = chunked["scoring_rss_mib"] / whole["scoring_rss_mib"], chunked["seconds"] / whole["seconds"]
        print(f"  chunked / all at once: memory {memory:.2f}, time {seconds:.2f}")
    if len(args.splits) > 1:
        first, last = args.splits[0], args.splits[-1]
        extra = (results[last, "chunked"]["candidates"] - results[first, "chunked"]["candidates"]) / 1e6
        for name in modes:
            grown = results[last, name]["scoring_rss_mib"] - results[first, name]["scoring_rss_mib"]
            print(f"{name}: {grown / extra:+.0f} MiB per extra million candidates")


if __name__ == "__main__":
    main()
