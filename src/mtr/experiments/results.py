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
