"""Benchmark serving: eager PyTorch, the exported program and the AOTInductor package side by side.

    python scripts/bench_serve.py --run demo/run --events demo/events --dataset demo/dataset

Exports the run's checkpoint (with `--weights`, default: a fixed operating point) to a temporary artifact,
builds raw candidate rows of the dataset's test opportunities from the simulator, and prints, for each
runtime, p50 / p99 latency of one request of `--request` candidates (complete opportunities, each with its
"none" candidate) and the throughput over `--total` candidates scored in batches of `--batch`. The
preprocessing (raw rows -> tensors, the same for every runtime) is timed separately.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mtr.models.checkpoint import load_trained_model
from mtr.scoring.operating_point import OperatingPoint
from mtr.scoring.policy import PolicyConfig
from mtr.scoring.requests import logged_requests
from mtr.scoring.weights import FusionWeights
from mtr.serving.export import export_artifact
from mtr.serving.program import ScoringProgram
from mtr.serving.scorer import ProgramInputs, Scorer

DEFAULT_POINT = OperatingPoint(
    FusionWeights(conversion=1.0, engagement=0.2, retention=0.5, unsubscribe=3.0, send_cost=0.002),
    PolicyConfig(threshold=0.001),
)


def latencies(program: Callable, inputs: ProgramInputs, size: int, repeats: int) -> np.ndarray:
    """Seconds per request of `size` candidates, cycling over requests that start at opportunity boundaries."""
    starts = inputs.group_starts[inputs.group_starts + size <= inputs.order.size]
    requests = [inputs.slice(int(s), int(s) + size) for s in starts[:: max(1, starts.size // 50)]]
    for request in requests[:5]:
        program(*request)  # warm-up
    times = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        program(*requests[i % len(requests)])
        times[i] = time.perf_counter() - t0
    return times


def throughput(program: Callable, inputs: ProgramInputs, batch: int) -> float:
    """Candidates per second over every candidate of `inputs`, in opportunity-preserving batches."""
    slices = inputs.batches(batch)
    program(*inputs.slice(*slices[0]))  # warm-up
    t0 = time.perf_counter()
    for start, stop in slices:
        program(*inputs.slice(start, stop))
    return inputs.order.size / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("demo/run"))
    parser.add_argument("--checkpoint", default="last.ckpt")
    parser.add_argument("--events", type=Path, default=Path("demo/events"))
    parser.add_argument("--dataset", type=Path, default=Path("demo/dataset"))
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--request", type=int, default=200, help="candidates per latency request")
    parser.add_argument("--total", type=int, default=100_000, help="candidates of the throughput run")
    parser.add_argument("--batch", type=int, default=2048, help="candidates per call in the throughput run")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (serving: one per request)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights or DEFAULT_POINT.save(Path(tmp) / "weights.json")
        t0 = time.perf_counter()
        manifest = export_artifact(args.run / "checkpoints" / args.checkpoint, weights, Path(tmp) / "artifact")
        print(f"export incl. AOTInductor compile: {time.perf_counter() - t0:.1f} s; aoti: {manifest['aoti']}")
        scorer = Scorer.load(Path(tmp) / "artifact")
        runtimes: dict[str, Callable] = {"exported .pt2": scorer.program}
        if manifest["aoti"].get("file"):
            runtimes["AOTInductor"] = Scorer.load(Path(tmp) / "artifact", runtime="aoti").program
        model, schema = load_trained_model(args.run, args.checkpoint)
        runtimes = {"eager PyTorch": ScoringProgram(model, schema, OperatingPoint.load(weights).fusion)} | runtimes

        # About 33 candidates per simulated opportunity; the cut keeps every opportunity's "none" (it comes first).
        frame = logged_requests(args.dataset, "test", 1 + args.total // 20, args.events).head(args.total)
        request_rows = frame.head(args.request)
        prep = np.array([_timed(lambda: scorer.inputs(request_rows)) for _ in range(50)])
        inputs = scorer.inputs(frame)
        threads = torch.get_num_threads()
        load = os.getloadavg()[0]
        print(f"{frame.height:,} candidates of {frame['row_id'].n_unique():,} opportunities; torch threads {threads}")
        print(
            f"CPUs {os.cpu_count()}, load average {load:.1f} (figures are only comparable on an otherwise idle machine)"
        )
        print(
            f"preprocessing of one {args.request}-candidate request (all runtimes): p50 {np.median(prep) * 1e3:.2f} ms"
        )
        print()
        print(f"| runtime | p50 ms ({args.request} cand.) | p99 ms | throughput (cand./s, batch {args.batch}) |")
        print("|---|---:|---:|---:|")
        with torch.inference_mode():
            for name, program in runtimes.items():
                times = latencies(program, inputs, args.request, args.repeats) * 1e3
                rate = throughput(program, inputs, args.batch)
                print(f"| {name} | {np.median(times):.2f} | {np.percentile(times, 99):.2f} | {rate:,.0f} |")
    print(f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def _timed(action: Callable) -> float:
    t0 = time.perf_counter()
    action()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
