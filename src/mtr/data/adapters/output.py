"""What every adapter shares after reading: split assignment, feature fitting and the dataset folder.

An adapter builds one `PreparedData` (all rows, a `split` column, raw feature values) and
`write_prepared` does the rest the same way for every dataset, so the DataModule sees one contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from mtr.data.adapters.source import dataset_source
from mtr.data.preprocess import fit_features
from mtr.errors import InputError
from mtr.io import atomic_output_dir, check_output_dir, sha256_file
from mtr.schema import SPLITS, DatasetSchema, TaskSpec

SPLIT_COLUMN = "split"
ROW_ID = "row_id"
Transform = Literal["identity", "log1p"]


@dataclass(frozen=True)
class PreparedData:
    """All rows of a public dataset, ready to be split into files, and what the schema needs to know.

    Args:
        name: dataset name written to the schema, for example "hillstrom".
        rows: every row with raw feature values, an Int64 `row_id` and a `split` column.
        sparse: categorical feature columns, in input order.
        dense: numeric feature columns and their transform, in input order (after the sparse ones).
        tasks: the prediction tasks.
        source_root: folder the source files are named relative to in the metadata.
        source_files: the files that were read; their sha256 goes into the metadata.
        descriptions: optional text per feature.
        action_column: logged action column, if any.
        channel_column: logged channel column, if any.
        propensity_column: logging propensity column, if any.
        value_columns: other columns kept for analysis.
        metadata: adapter-specific facts (seed, protocol, options).
    """

    name: str
    rows: pl.DataFrame
    sparse: tuple[str, ...]
    dense: Mapping[str, Transform]
    tasks: tuple[TaskSpec, ...]
    source_root: Path
    source_files: tuple[Path, ...]
    descriptions: Mapping[str, str] = field(default_factory=dict)
    action_column: str | None = None
    channel_column: str | None = None
    propensity_column: str | None = None
    value_columns: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)


def random_order(n_rows: int, seed: int) -> pl.Series:
    """A seeded random key per row, [n_rows] float64; ranking by it gives a reproducible shuffle."""
    return pl.Series("random_order", np.random.default_rng(seed).random(n_rows))


def with_split(
    frame: pl.DataFrame,
    fractions: Mapping[str, float],
    order: str | pl.Series,
    by: str | Sequence[str] | None = None,
) -> pl.DataFrame:
    """Add a `split` column: rows ranked by `order` within each `by` group are cut at the cumulative fractions.

    Cutting ranks (rather than drawing a split per row) gives each group exactly its share, so a random
    key yields a stratified random split and a timestamp yields a split by time.

    Args:
        frame: the rows to split.
        fractions: split name -> share, in the order the ranks are cut; shares must sum to 1.
        order: the ranking key: a column name (for example a timestamp) or a Series such as `random_order`.
        by: group column(s) ranked separately (strata, or policies), or None for one group.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9 or min(fractions.values()) < 0:
        raise InputError(f"split fractions must be non-negative and sum to 1, got {dict(fractions)}")
    key = order if isinstance(order, str) else "__split_order"
    keyed = frame if isinstance(order, str) else frame.with_columns(order.alias(key))
    rank = pl.col(key).rank("ordinal") - 1
    size = pl.len()
    if by is not None:
        rank, size = rank.over(by), size.over(by)
    names = list(fractions)
    split = pl.lit(names[-1])
    cumulative = np.cumsum(list(fractions.values()))
    for name, upper in reversed(list(zip(names[:-1], cumulative[:-1], strict=True))):
        split = pl.when(rank < (size * upper).round()).then(pl.lit(name)).otherwise(split)
    return keyed.with_columns(split.alias(SPLIT_COLUMN)).select(*frame.columns, SPLIT_COLUMN)


# The command that writes prepared datasets, named in their output marker (`mtr.io.check_output_dir`).
PREPARE = "data prepare"


# The checksum file of a data folder (one "<sha256>  <relative path>" line per file, as sha256sum writes it).
CHECKSUMS = "SHA256SUMS"


def check_published(hashes: Mapping[Path, str], source_root: Path) -> None:
    """Every source file listed in a SHA256SUMS of its data folder (the source folder or its parent, as in
    $MTR_DATA_DIR) has the listed hash: a cut or edited copy of a published file is refused, not prepared."""
    for folder in (Path(source_root), Path(source_root).parent):
        sums = folder / CHECKSUMS
        if not sums.is_file():
            continue
        listed = {}
        for line in sums.read_text().splitlines():
            digest, _, name = line.strip().partition("  ")
            if name:
                listed[(folder / name.lstrip("*")).resolve()] = digest
        for path, digest in hashes.items():
            expected = listed.get(Path(path).resolve())
            if expected is not None and expected != digest:
                raise InputError(
                    f"source file {path}: its SHA-256 {digest[:12]}... is not the published {expected[:12]}... of "
                    f"{sums} (a cut or edited copy?); restore the file, or prepare a copy kept outside that folder"
                )


def prepare(
    out: Path, source: Path | None, folder: str, build: Callable[[Path], PreparedData], overwrite: bool
) -> DatasetSchema:
    """`mtr data prepare`: the source folder (`dataset_source`), `out` checked before the build (never the
    source), then the built data written."""
    root = dataset_source(source, folder)
    check_output_dir(out, PREPARE, overwrite, [root])
    return write_prepared(out, build(root), overwrite)


def write_prepared(out: Path, data: PreparedData, overwrite: bool = False) -> DatasetSchema:
    """Fit feature encodings on the train split and write train/validation/test Parquet plus schema.json (an
    existing `out` only when it is an earlier prepared dataset, or with `overwrite`).

    Returns:
        The schema written to `out/schema.json`.
    """
    unknown = set(data.rows[SPLIT_COLUMN].unique().to_list()) - set(SPLITS)
    if unknown:
        raise InputError(f"dataset '{data.name}': unknown split names {sorted(unknown)}")
    if data.rows[ROW_ID].n_unique() != data.rows.height:
        raise InputError(f"dataset '{data.name}': column '{ROW_ID}' is not unique")
    rows = data.rows.with_columns(pl.col(ROW_ID).cast(pl.Int64)).sort(ROW_ID)
    splits = {name: rows.filter(pl.col(SPLIT_COLUMN) == name).drop(SPLIT_COLUMN) for name in SPLITS}
    empty = [name for name, frame in splits.items() if frame.height == 0]
    if empty:
        raise InputError(f"dataset '{data.name}': split(s) {empty} are empty")
    features = fit_features(splits["train"], data.sparse, data.dense, data.descriptions)
    hashes = {path: sha256_file(path) for path in data.source_files}
    check_published(hashes, data.source_root)
    metadata = {
        **data.metadata,
        "sources": {str(path.relative_to(data.source_root)): digest for path, digest in hashes.items()},
        "rows": {name: frame.height for name, frame in splits.items()},
        **label_summary(splits, data.tasks),
    }
    schema = DatasetSchema(
        name=data.name,
        features=features,
        tasks=data.tasks,
        row_id_column=ROW_ID,
        action_column=data.action_column,
        channel_column=data.channel_column,
        propensity_column=data.propensity_column,
        value_columns=data.value_columns,
        metadata=metadata,
    )
    with atomic_output_dir(out, PREPARE, overwrite, [data.source_root]) as folder:
        for name, frame in splits.items():
            frame.write_parquet(schema.split_path(folder, name))
        schema.save(folder)
    return schema


def label_summary(splits: Mapping[str, pl.DataFrame], tasks: Sequence[TaskSpec]) -> dict[str, Any]:
    """Per task and split: labelled rows, positives and the positive rate among labelled rows."""
    summary: dict[str, dict[str, dict[str, float | None]]] = {"labelled": {}, "positives": {}, "positive_rate": {}}
    for task in tasks:
        label = pl.col(task.label_column)
        labelled = pl.col(task.mask_column).cast(pl.Boolean) if task.mask_column else label.is_not_null()
        counts = {
            name: frame.select(labelled.sum().alias("n"), label.filter(labelled).sum().alias("k"))
            for name, frame in splits.items()
        }
        summary["labelled"][task.name] = {name: int(c["n"][0]) for name, c in counts.items()}
        summary["positives"][task.name] = {name: int(c["k"][0]) for name, c in counts.items()}
        summary["positive_rate"][task.name] = {
            name: float(c["k"][0]) / c["n"][0] if c["n"][0] else None for name, c in counts.items()
        }
    return summary
