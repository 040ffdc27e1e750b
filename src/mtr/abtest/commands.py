"""`mtr ab analyze` and `mtr ab simulate`."""

from __future__ import annotations

from pathlib import Path


def ab_analyze(data: Path, config: Path, out: Path) -> None:
    """Analyse an A/B experiment."""
    raise NotImplementedError("mtr ab analyze is being built")


def ab_simulate(out: Path) -> None:
    """Run a simulated online A/B test."""
    raise NotImplementedError("mtr ab simulate is being built")
