"""Finding and reading the public source files: one default-folder rule and one checked CSV reader."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from mtr.errors import InputError

DATA_DIR_VARIABLE = "MTR_DATA_DIR"
DEFAULT_DATA_DIR = Path("../shared/data")  # relative to the current directory, as in the repository layout


def dataset_source(source: Path | None, folder: str) -> Path:
    """The folder holding a public dataset: `source` if given, else `$MTR_DATA_DIR/<folder>`.

    Args:
        source: an explicit folder chosen by the user (or one of its files: its folder is taken), or None.
        folder: the dataset's folder name under the public data directory, for example "hillstrom".
    """
    if source is not None:
        return Path(source).parent if Path(source).is_file() else Path(source)
    return Path(os.environ.get(DATA_DIR_VARIABLE, DEFAULT_DATA_DIR)) / folder


def read_csv_table(
    path: Path,
    columns: Mapping[str, pl.DataType],
    has_header: bool = True,
    missing: str | None = None,
) -> pl.DataFrame:
    """Read a CSV file (plain or gzip) and return `columns` with their dtypes, in that order.

    Every value is read as a string, stripped of surrounding spaces and then cast, so that a bad value
    is reported with its column instead of a parser offset. Columns not listed are dropped.

    Args:
        path: the CSV file; the error messages name it.
        columns: column name -> polars dtype. Without a header, the file's fields are named in this order.
        has_header: whether the first line holds column names.
        missing: a value (after stripping) that means missing, for example "?"; without one, an empty field is
            an error (a truncated file).

    Raises:
        InputError: the file is missing or unreadable, a column is missing, or a value cannot be cast.
    """
    if not path.is_file():
        raise InputError(f"source file not found: {path}")
    try:
        frame = pl.read_csv(path, has_header=has_header, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise InputError(f"source file {path} is not a readable CSV file: {error}") from error
    if not has_header:
        if frame.width != len(columns):
            raise InputError(
                f"source file {path} has {frame.width} fields per line, expected {len(columns)}: {list(columns)}"
            )
        frame = frame.rename(dict(zip(frame.columns, columns, strict=True)))
    absent = [name for name in columns if name not in frame.columns]
    if absent:
        raise InputError(f"table '{path}' has no column '{absent[0]}' (columns: {frame.columns})")
    text = frame.select(pl.col(name).str.strip_chars() for name in columns)
    if missing is None:  # a file without a missing-value marker has no empty fields, unless it was cut short
        empty = text.select(pl.col(name).is_null().arg_true().first() for name in columns)
        for name, row in empty.row(0, named=True).items():
            if row is not None:
                raise InputError(
                    f"table '{path}' column '{name}': no value on data line {row + 1} (a truncated or ragged file?)"
                )
    else:
        text = text.with_columns(pl.all().replace(missing, None))
    typed = text.select(_parse(pl.col(name), dtype).alias(name) for name, dtype in columns.items())
    # A value that was present as text but is null after the cast could not be parsed.
    failed = text.select((pl.col(name).is_not_null() & typed[name].is_null()).arg_true().first() for name in columns)
    for name, row in failed.row(0, named=True).items():
        if row is not None:
            raise InputError(
                f"table '{path}' column '{name}': value {text[name][row]!r} on data line {row + 1} "
                f"is not a {columns[name]}"
            )
    return typed


def _parse(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if isinstance(dtype, pl.Datetime):
        return column.str.to_datetime(time_unit=dtype.time_unit, time_zone=dtype.time_zone, strict=False)
    return column.cast(dtype, strict=False)
