"""Per-unit experiment data: read a CSV or Parquet file, check it, and split it into arms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mtr.abtest.spec import MetricSpec
from mtr.errors import InputError
from mtr.tables import NUMERIC, check_columns

# Booleans count as numbers here: Cookie Cats stores retention as TRUE/FALSE.
METRIC_DTYPES = NUMERIC + (pl.Boolean,)


@dataclass(frozen=True)
class Arms:
    """Per-unit columns split by arm.

    Attributes:
        names: arm names, the control first.
        columns: arm -> column -> float64 array [n_arm].
    """

    names: list[str]
    columns: dict[str, dict[str, np.ndarray]]

    @property
    def control(self) -> str:
        return self.names[0]

    def size(self, arm: str) -> int:
        return len(next(iter(self.columns[arm].values())))


def read_units(path: Path) -> pl.DataFrame:
    """Read a per-unit table from CSV (optionally gzipped) or Parquet."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"experiment data file not found: {path}")
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if path.suffix.lower() == ".parquet":
            frame = pl.read_parquet(path)
        elif suffixes.endswith((".csv", ".csv.gz")):
            # Whole-file schema inference: Hillstrom's spend is 0 for the first hundreds of rows.
            frame = pl.read_csv(path, infer_schema_length=None)
        else:
            raise InputError(f"experiment data file {path}: expected .csv, .csv.gz or .parquet")
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InputError(f"experiment data file {path} cannot be read: {error}") from error
    if frame.height == 0:
        raise InputError(f"experiment data file {path} has no rows (columns only: {frame.columns})")
    return frame


def split_arms(
    frame: pl.DataFrame,
    table: str,
    arm_column: str,
    control: str,
    arms: Sequence[str] | None,
    metrics: Sequence[MetricSpec],
    unit_column: str | None = None,
) -> Arms:
    """Check the table and return each arm's metric columns as float arrays.

    Args:
        frame: one row per randomisation unit.
        table: the table's name for error messages (usually its file).
        arm_column: the assignment column; values are compared as strings.
        control: the control arm's value.
        arms: treatment arms to compare with control; None means every other arm present.
        metrics: the metrics whose columns are read.
        unit_column: optional unit id; it must be unique (aggregate events per unit first).

    Raises:
        InputError: a missing column, nulls, a duplicated unit, a single arm or an arm without units.
    """
    columns = sorted({c for m in metrics for c in m.columns})
    check_columns(table, frame.schema, {c: METRIC_DTYPES for c in columns})
    if arm_column not in frame.columns:
        raise InputError(f"table '{table}' has no arm column '{arm_column}' (columns: {frame.columns})")
    if unit_column is not None:
        if unit_column not in frame.columns:
            raise InputError(f"table '{table}' has no unit column '{unit_column}' (columns: {frame.columns})")
        if frame[unit_column].n_unique() != frame.height:
            raise InputError(
                f"table '{table}' column '{unit_column}' has duplicated units: give one row per randomisation unit"
            )
    for column in [arm_column, *columns]:
        nulls = frame[column].null_count()
        if nulls:
            raise InputError(f"table '{table}' column '{column}' has {nulls} null values")
    labels = frame[arm_column].cast(pl.String)
    present = sorted(set(labels.unique().to_list()))
    treatments = list(arms) if arms is not None else [a for a in present if a != control]
    if control in treatments:
        raise InputError(f"arm '{control}' is the control and cannot also be a treatment arm")
    if not treatments:
        raise InputError(f"table '{table}' column '{arm_column}' has a single arm {present}: nothing to compare")
    for arm in [control, *treatments]:
        if arm not in present:
            raise InputError(f"table '{table}': arm '{arm}' has no units in column '{arm_column}' (arms: {present})")
    values = frame.select(pl.col(columns).cast(pl.Float64)).with_columns(labels.alias("__arm"))
    split: dict[str, dict[str, np.ndarray]] = {}
    for arm, part in values.partition_by("__arm", as_dict=True).items():
        if arm[0] in (control, *treatments):
            split[arm[0]] = {c: part[c].to_numpy() for c in columns}
    for arm in [control, *treatments]:
        if len(split[arm][columns[0]]) < 2:
            raise InputError(f"table '{table}': arm '{arm}' has fewer than 2 units")
    _check_denominators(table, split, metrics)
    return Arms([control, *treatments], split)


def _check_denominators(table: str, split: dict[str, dict[str, np.ndarray]], metrics: Sequence[MetricSpec]) -> None:
    for metric in metrics:
        if metric.denominator is None:
            continue
        for arm, columns in split.items():
            denominator = columns[metric.denominator]
            if (denominator < 0).any():
                raise InputError(
                    f"table '{table}' metric '{metric.name}': denominator '{metric.denominator}' is negative "
                    f"in arm '{arm}'"
                )
            if denominator.sum() == 0:
                raise InputError(
                    f"table '{table}' metric '{metric.name}': denominator '{metric.denominator}' sums to zero "
                    f"in arm '{arm}', so the ratio is undefined"
                )
