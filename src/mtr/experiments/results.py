"""Writing an experiment's results: results.json and the README.md table, together and atomically."""

from __future__ import annotations

from pathlib import Path

from mtr.io import atomic_output_dir, write_json


def write_results(out: Path, results: dict, readme: str) -> None:
    """Replace `out` with results.json (the figures) and README.md (`readme`, the tables made from them)."""
    with atomic_output_dir(out) as folder:
        write_json(folder / "results.json", results)
        (folder / "README.md").write_text(readme)
