"""Writing an experiment's results: results.json and the README.md table, together and atomically."""

from __future__ import annotations

from pathlib import Path

from mtr.io import atomic_output_dir, write_json


def write_results(out: Path, results: dict, readme: str, command: str) -> None:
    """Replace `out` with results.json (the figures) and README.md (`readme`, the tables made from them); an
    existing `out` only when `command` wrote it (`mtr.io.check_output_dir`)."""
    with atomic_output_dir(out, command) as folder:
        write_json(folder / "results.json", results)
        (folder / "README.md").write_text(readme)


def seed_interval(values: list[float]) -> dict[str, float | list[float]]:
    """Mean over seeds with its 95% t interval (seeds - 1 degrees of freedom), and the values per seed."""
    import numpy as np
    from scipy import stats

    mean, n = float(np.mean(values)), len(values)
    half = float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / np.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "per_seed": values}
