"""`mtr simulate`."""

from __future__ import annotations

from pathlib import Path


def simulate(out: Path, users: int = 5000, days: int = 28, seed: int = 0) -> None:
    """Simulate a messaging platform and write its raw event logs as Parquet.

    Args:
        out: output folder for the event logs.
        users: number of users.
        days: number of days with sending opportunities.
        seed: random seed; the same seed gives the same bytes.
    """
    raise NotImplementedError("mtr simulate is being built")
