"""Row counts, positive rates, mask rates (and mean labels of continuous tasks) per task of a split: stored in
schema.json and printed."""

from __future__ import annotations

from typing import Any

import polars as pl

from mtr.schema import DatasetSchema


def split_report(split: pl.LazyFrame, schema: DatasetSchema) -> dict[str, Any]:
    """Rates of each task in one split, in one streaming pass.

    Returns:
        `{"rows": N, "tasks": {task: {"labelled": rows with mask 1, "mask_rate": labelled / N,
        "positive_rate": rows with a label > 0 / labelled (None when nothing is labelled)}}}`; continuous
        tasks also get "mean", the mean label over labelled rows (None when nothing is labelled).
    """
    continuous = [t for t in schema.tasks if schema.objective(t.objective).kind == "continuous"]
    labelled = {t.name: pl.col(t.mask_column).cast(pl.Int64) for t in schema.tasks}
    positive = {t.name: (pl.col(t.label_column).fill_null(0) > 0).cast(pl.Int64) for t in schema.tasks}
    sums = split.select(
        pl.len().alias("rows"),
        *(mask.sum().alias(f"{name}:labelled") for name, mask in labelled.items()),
        *((labelled[name] * positive[name]).sum().alias(f"{name}:positive") for name in labelled),
        *((labelled[t.name] * pl.col(t.label_column).fill_null(0.0)).sum().alias(f"{t.name}:sum") for t in continuous),
    ).collect(engine="streaming")
    rows = int(sums["rows"][0])
    report: dict[str, Any] = {}
    for task in schema.tasks:
        count = int(sums[f"{task.name}:labelled"][0])
        positive = int(sums[f"{task.name}:positive"][0])
        report[task.name] = {
            "labelled": count,
            "mask_rate": count / rows if rows else 0.0,
            "positive_rate": positive / count if count else None,
        }
        if task in continuous:
            report[task.name]["mean"] = float(sums[f"{task.name}:sum"][0]) / count if count else None
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
