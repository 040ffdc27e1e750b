"""Benchmark: DataModule batches per second on the census and simulator datasets.

Prepares the datasets first when they are missing (census from $MTR_DATA_DIR, the simulator via
`mtr simulate` + `mtr build-dataset`). Prints one line per dataset.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from mtr.data.datamodule import MessagingDataModule


def ensure_datasets(root: Path) -> dict[str, Path]:
    mtr = [sys.executable, "-m", "mtr.cli"]
    census, events, simulator = root / "census", root / "sim_events", root / "sim_dataset"
    if not (census / "schema.json").exists():
        subprocess.run([*mtr, "data", "prepare", "census", "--out", str(census)], check=True)
    if not (simulator / "schema.json").exists():
        subprocess.run(
            [*mtr, "simulate", "--users", "20000", "--days", "28", "--seed", "1", "--out", str(events)], check=True
        )
        subprocess.run([*mtr, "build-dataset", "--events", str(events), "--out", str(simulator)], check=True)
    return {"census": census, "simulator": simulator}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("data/bench"))
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    for name, path in ensure_datasets(args.root).items():
        data = MessagingDataModule(str(path), batch_size=args.batch_size)
        start = time.perf_counter()
        data.setup("fit")
        load_seconds = time.perf_counter() - start
        rows = batches = 0
        start = time.perf_counter()
        for _ in range(args.epochs):
            for batch in data.train_dataloader():
                rows += len(batch)
                batches += 1
        seconds = time.perf_counter() - start
        print(
            f"{name:10s} rows={len(data.split('train')):>9,} features={len(data.schema.features):>3} "
            f"load={load_seconds:5.2f}s batches/s={batches / seconds:8.0f} rows/s={rows / seconds:12,.0f} "
            f"(batch {args.batch_size})"
        )


if __name__ == "__main__":
    main()
