"""`mtr build-dataset --events DIR --out DIR`."""

from __future__ import annotations

from pathlib import Path

from mtr.data.build import BuildConfig, build_dataset_from_events
from mtr.data.split_rates import format_report

DEFAULT_BUILD = BuildConfig()


def build_dataset(events: Path, out: Path, build: BuildConfig = DEFAULT_BUILD) -> None:
    """Build training tables and schema.json from raw event logs.

    Args:
        events: folder of raw event logs (as written by `mtr simulate`).
        out: output dataset folder (replaced only when the build succeeds).
        build: split fractions, partitions and feature settings (`--build.partitions 16`).
    """
    schema = build_dataset_from_events(events, out, build)
    print(f"dataset '{schema.name}' written to {out} (fingerprint {schema.metadata['fingerprint'][:12]})")
    print(format_report(schema.metadata["rows"], schema.metadata["rates"]))
