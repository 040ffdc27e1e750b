"""Row counts, positive rates and mask rates per task of a split: stored in schema.json and printed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from mtr.schema import TaskSpec


def split_report(split: pl.LazyFrame, tasks: Sequence[TaskSpec]) -> dict[str, Any]:
    """Rates of each task in one split, in one streaming pass.

    Returns:
        `{"rows": N, "tasks": {task: {"labelled": rows with mask 1, "mask_rate": labelled / N,
        "positive_rate": positives / labelled (None when nothing is labelled)}}}`.
    """
    sums = split.select(
        pl.len().alias("rows"),
        *(pl.col(t.mask_column).cast(pl.Int64).sum().alias(f"{t.name}:labelled") for t in tasks),
        *(
            (pl.col(t.mask_column).cast(pl.Int64) * pl.col(t.label_column).fill_null(0).cast(pl.Int64))
            .sum()
            .alias(f"{t.name}:positive")
            for t in tasks
        ),
    ).collect(engine="streaming")
    rows = int(sums["rows"][0])
    report: dict[str, Any] = {}
    for task in tasks:
        labelled = int(sums[f"{task.name}:labelled"][0])
        positive = int(sums[f"{task.name}:positive"][0])
        report[task.name] = {
            "labelled": labelled,
            "mask_rate": labelled / rows if rows else 0.0,
            "positive_rate": positive / labelled if labelled else None,
        }
    return {"rows": rows, "tasks": report}


def format_report(rows: dict[str, int], rates: dict[str, dict[str, dict[str, Any]]]) -> str:
    """A plain-text table: per task, the positive rate and mask rate of every split."""
    splits = list(rows)
    header = f"{'task':<18}" + "".join(f"{split + ' pos':>16}{split + ' mask':>16}" for split in splits)
    lines = [
        "rows: " + ", ".join(f"{split} {count:,}" for split, count in rows.items()),
        header,
    ]
    for task in next(iter(rates.values())):
        cells = []
        for split in splits:
            stats = rates[split][task]
            positive = "-" if stats["positive_rate"] is None else f"{stats['positive_rate']:.4f}"
            cells.append(f"{positive:>16}{stats['mask_rate']:>16.4f}")
        lines.append(f"{task:<18}" + "".join(cells))
    return "\n".join(lines)
