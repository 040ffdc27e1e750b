"""`mtr build-dataset`."""

from __future__ import annotations

from pathlib import Path


def build_dataset(events: Path, out: Path) -> None:
    """Build training tables and schema.json from raw event logs.

    Args:
        events: folder of raw event logs (as written by `mtr simulate`).
        out: output dataset folder.
    """
    raise NotImplementedError("mtr build-dataset is being built")
