"""Reading Parquet tables with checks that name the table and the column when something is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from mtr.errors import InputError

# A column's expected kind: one polars dtype class, or a tuple of acceptable ones.
DtypeSpec = type[pl.DataType] | tuple[type[pl.DataType], ...]

INTEGER = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
FLOAT = (pl.Float32, pl.Float64)
NUMERIC = INTEGER + FLOAT
STRING = (pl.String, pl.Categorical, pl.Enum)


def _accepts(expected: DtypeSpec, actual: pl.DataType) -> bool:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return any(actual.is_(kind) or isinstance(actual, kind) for kind in kinds)


def _describe(expected: DtypeSpec) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(kind.__name__ for kind in kinds)


def check_columns(table: str, schema: pl.Schema, required: Mapping[str, DtypeSpec]) -> None:
    """Raise `InputError` naming `table` and the column when a column is missing or of a wrong dtype."""
    for column, expected in required.items():
        if column not in schema:
            raise InputError(f"table '{table}' has no column '{column}' (columns: {list(schema.names())})")
        if not _accepts(expected, schema[column]):
            raise InputError(
                f"table '{table}' column '{column}' has dtype {schema[column]}, expected {_describe(expected)}"
            )


def scan_table(path: Path, table: str, required: Mapping[str, DtypeSpec]) -> pl.LazyFrame:
    """Lazily scan a Parquet table after checking that it exists, is non-empty and has `required` columns."""
    if not path.exists():
        raise InputError(f"table '{table}' not found: {path}")
    try:
        frame = pl.scan_parquet(path)
        schema = frame.collect_schema()
    except (pl.exceptions.ComputeError, OSError) as error:
        raise InputError(f"table '{table}' at {path} is not a readable Parquet file: {error}") from error
    check_columns(table, schema, required)
    return frame


def require_rows(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Raise `InputError` if `frame` is empty."""
    if frame.height == 0:
        raise InputError(f"table '{table}' is empty")
    return frame
