"""The oracle gap: trained models' per-task metrics next to those of the simulator's true probabilities.

The simulator draws every logged label from a known probability (`truth/logged_probabilities.parquet`),
so scoring the test rows with that probability gives the best AUC and calibration any model could reach
on those rows in expectation. The gap between it and a model's metrics is what the model leaves on
the table. Both are scored by `task_metrics` on exactly the same labelled rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch
import yaml

from mtr.data.build import build_dataset_from_events
from mtr.errors import InputError
from mtr.io import read_json
from mtr.schema import SCHEMA_FILE, DatasetSchema
from mtr.sim.commands import simulate
from mtr.sim.config import WorldConfig
from mtr.tables import FLOAT, INTEGER, scan_table
from mtr.training.lightning_cli import run_training_cli
from mtr.training.metrics import task_metrics

TRUTH_FILE = Path("truth") / "logged_probabilities.parquet"
TRUTH_KEY = "opportunity_id"


def read_world(path: Path, task_correlation: float | None = None) -> tuple[int, int, int, WorldConfig]:
    """(users, days, seed, world) of an `mtr simulate --config` YAML file, optionally with another knob value."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    unknown = sorted(set(raw) - {"users", "days", "seed", "world"})
    if unknown:
        raise InputError(f"{path}: unknown field(s) {unknown}; allowed: days, seed, users, world")
    try:
        world = WorldConfig(**raw.get("world", {}))
    except TypeError as error:
        raise InputError(f"{path}: field 'world': {error}") from error
    if task_correlation is not None:
        world = dataclasses.replace(world, task_correlation=task_correlation)
    return raw.get("users", 5000), raw.get("days", 28), raw.get("seed", 0), world


def simulated_dataset(folder: Path, users: int, days: int, seed: int, world: WorldConfig) -> tuple[Path, Path]:
    """Simulate a world into `folder/events` and build `folder/dataset`; steps already done are reused.

    Returns:
        (events_dir, dataset_dir).
    """
    events, dataset = folder / "events", folder / "dataset"
    if (events / "meta.json").exists():
        meta = read_json(events / "meta.json")["config"]
        wanted = {"users": users, "days": days, "seed": seed}
        if {k: meta[k] for k in wanted} != wanted or meta["world"]["task_correlation"] != world.task_correlation:
            raise InputError(f"{events} holds another world ({meta}); remove it or choose another folder")
    else:
        simulate(events, users, days, seed, world)
    if not (dataset / SCHEMA_FILE).exists():
        build_dataset_from_events(events, dataset)
    return events, dataset


def predict_split(run_dir: Path, checkpoint: Path | str, out: Path) -> Path:
    """Score the test split with a trained run's saved config and a checkpoint (`mtr predict`); returns `out`."""
    argv = ["predict", "--config", str(run_dir / "config.yaml"), "--ckpt_path", str(checkpoint)]
    run_training_cli([*argv, "--predictions", str(out), "--trainer.logger", "false", "--wandb", "false"])
    return out


@dataclass(frozen=True)
class LabelledRows:
    """The test split's labels and masks, in row_id order.

    Args:
        row_id: [N] row ids (the simulator's opportunity ids).
        labels: [N, T] 0/1 label of each task; masks: [N, T] 1 where the task is labelled.
        tasks: task names in schema order.
    """

    row_id: np.ndarray
    labels: torch.Tensor
    masks: torch.Tensor
    tasks: list[str]


def read_labelled_rows(dataset_dir: Path | str, split: str = "test") -> tuple[LabelledRows, DatasetSchema]:
    """Read one split's row ids, labels and masks (every row labelled where a task has no mask column)."""
    schema = DatasetSchema.load(dataset_dir)
    columns = {schema.row_id_column: INTEGER}
    for task in schema.tasks:
        columns[task.label_column] = INTEGER
        if task.mask_column is not None:
            columns[task.mask_column] = INTEGER
    frame = scan_table(schema.split_path(dataset_dir, split), split, columns).select(list(columns)).collect()
    frame = frame.sort(schema.row_id_column)
    ones = pl.lit(1)
    labels = frame.select(pl.col(t.label_column).alias(t.name) for t in schema.tasks).to_torch(dtype=pl.Float64)
    masks = frame.select(
        (pl.col(t.mask_column) if t.mask_column else ones).alias(t.name) for t in schema.tasks
    ).to_torch(dtype=pl.Float64)
    _check_null_where_unmasked(labels, masks, schema.task_names, f"split '{split}' labels")
    rows = LabelledRows(frame[schema.row_id_column].to_numpy(), torch.nan_to_num(labels), masks, schema.task_names)
    return rows, schema


def _check_null_where_unmasked(values: torch.Tensor, masks: torch.Tensor, tasks: list[str], table: str) -> None:
    """Null (NaN) values are allowed only on rows a task does not label (mask 0)."""
    unusable = torch.isnan(values) & (masks > 0)
    if unusable.any():
        task = tasks[int(unusable.any(0).nonzero()[0])]
        raise InputError(f"{table}: null values on {int(unusable.sum())} labelled rows, e.g. of task '{task}'")


def _aligned(frame: pl.DataFrame, key: str, row_id: np.ndarray, columns: list[str], table: str) -> pl.DataFrame:
    """`columns` of `frame` in the order of `row_id`; InputError naming `table` if a row is missing."""
    wanted = pl.DataFrame({key: row_id}).with_columns(pl.col(key).cast(frame.schema[key]))
    joined = wanted.join(frame.select(key, *columns).with_columns(pl.lit(True).alias("_found")), on=key, how="left")
    missing = joined.filter(pl.col("_found").is_null())
    if missing.height:
        ids = missing[key].head(5).to_list()
        raise InputError(f"table '{table}' lacks {missing.height} of the {len(row_id)} test rows ({key} e.g. {ids})")
    return joined.select(columns)


def truth_probabilities(events_dir: Path | str, rows: LabelledRows, schema: DatasetSchema) -> torch.Tensor:
    """[N, T] true probability of each task's label: column p_{objective} of the logged opportunity.

    Engagement and unsubscribe truth is null on no-send rows; no task labels those rows with them, so
    nulls are only allowed where the task's mask is 0 (they are set to 0 there and never scored).
    """
    path = Path(events_dir) / TRUTH_FILE
    objectives = sorted({t.objective for t in schema.tasks})
    required = {TRUTH_KEY: INTEGER, **{f"p_{o}": FLOAT for o in objectives}}
    truth = scan_table(path, "logged_probabilities", required).collect()
    aligned = _aligned(truth, TRUTH_KEY, rows.row_id, list(required)[1:], "logged_probabilities")
    p = aligned.select(pl.col(f"p_{t.objective}").alias(t.name) for t in schema.tasks).to_torch(dtype=pl.Float64)
    _check_null_where_unmasked(p, rows.masks, rows.tasks, f"table 'logged_probabilities' ({path})")
    return torch.nan_to_num(p)


def model_probabilities(predictions: Path | str, rows: LabelledRows, row_id_column: str = "row_id") -> torch.Tensor:
    """[N, T] a `mtr predict` output (row_id + p_{task}) aligned to the labelled rows."""
    columns = [f"p_{task}" for task in rows.tasks]
    table = f"predictions {predictions}"
    frame = scan_table(Path(predictions), table, {row_id_column: INTEGER, **dict.fromkeys(columns, FLOAT)}).collect()
    return _aligned(frame, row_id_column, rows.row_id, columns, table).to_torch(dtype=pl.Float64)


def oracle_gap(
    dataset_dir: Path | str, events_dir: Path | str, predictions: Mapping[str, Path | str], split: str = "test"
) -> dict:
    """Per-task metrics of the simulator's truth and of each model's predictions on the same labelled rows.

    Args:
        dataset_dir: the dataset built by `mtr build-dataset` from `events_dir`.
        events_dir: the `mtr simulate` output holding `truth/logged_probabilities.parquet`.
        predictions: model name -> `mtr predict` Parquet of `split`.

    Returns:
        {"tasks": [T names], "rows": [T], "positives": [T], "truth": {metric: [T]},
        "models": {name: {metric: [T]}}}, metrics as in `task_metrics` (NaN where undefined).
    """
    rows, schema = read_labelled_rows(dataset_dir, split)
    truth = task_metrics(truth_probabilities(events_dir, rows, schema), rows.labels, rows.masks)
    scored = {
        name: task_metrics(model_probabilities(path, rows, schema.row_id_column), rows.labels, rows.masks)
        for name, path in predictions.items()
    }
    metric_names = ("auc", "logloss", "ne", "calibration", "ece")
    return {
        "tasks": rows.tasks,
        "rows": truth["labelled"].long().tolist(),
        "positives": truth["positives"].long().tolist(),
        "truth": {m: truth[m].tolist() for m in metric_names},
        "models": {name: {m: metrics[m].tolist() for m in metric_names} for name, metrics in scored.items()},
    }
