"""The one preprocessing code path: raw table columns -> model tensors.

`fit_features` learns vocabularies and scaling on the train split when a dataset is prepared; the
result lives in `schema.json`. `encode_features` applies it, both when the DataModule reads a split
and when the serving scorer reads raw candidate rows, so training and serving cannot drift apart.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from mtr.errors import InputError
from mtr.schema import DatasetSchema, FeatureSpec
from mtr.tables import INTEGER, NUMERIC, STRING, check_columns

SPARSE_RAW_DTYPES = STRING + INTEGER + (pl.Boolean,)


@dataclass(frozen=True)
class EncodedFeatures:
    """Model inputs for N rows.

    Attributes:
        sparse_ids: [N, n_sparse] int64, ids into each sparse feature's embedding table.
        dense: [N, n_dense] float32, transformed and standardised.
    """

    sparse_ids: np.ndarray
    dense: np.ndarray


def fit_features(
    train: pl.DataFrame,
    sparse: Sequence[str],
    dense: Mapping[str, Literal["identity", "log1p"]],
    descriptions: Mapping[str, str] | None = None,
    min_count: int = 1,
    sources: Mapping[str, str] | None = None,
    hashed: Mapping[str, int] | None = None,
) -> tuple[FeatureSpec, ...]:
    """Learn each feature's encoding from the train split.

    Args:
        train: the train split with raw feature columns.
        sparse: categorical columns; values seen at least `min_count` times form the vocabulary.
        dense: numeric columns and their transform.
        descriptions: optional text per feature for the schema.
        min_count: rarer values map to the unknown id 0.
        sources: optional origin per feature (`FeatureSpec.source`).
        hashed: sparse columns hashed into this many buckets instead of a vocabulary (`FeatureSpec.hash_buckets`).
    """
    descriptions, sources, hashed = descriptions or {}, sources or {}, hashed or {}
    check_columns("train", train.schema, {name: SPARSE_RAW_DTYPES for name in sparse})
    check_columns("train", train.schema, {name: NUMERIC + (pl.Boolean,) for name in dense})
    specs = []
    for name in sparse:
        if name in hashed:
            specs.append(
                FeatureSpec(
                    name,
                    "sparse",
                    str(train.schema[name]),
                    hash_buckets=hashed[name],
                    description=descriptions.get(name, ""),
                    source=sources.get(name, ""),
                )
            )
            continue
        counts = train.select(pl.col(name).cast(pl.String).drop_nulls().value_counts(sort=True)).unnest(name)
        vocabulary = counts.filter(pl.col("count") >= min_count)[name].sort().to_list()
        if not vocabulary:
            raise InputError(f"table 'train' column '{name}' has no values to build a vocabulary from")
        specs.append(
            FeatureSpec(
                name,
                "sparse",
                str(train.schema[name]),
                tuple(vocabulary),
                description=descriptions.get(name, ""),
                source=sources.get(name, ""),
            )
        )
    for name, transform in dense.items():
        values = _transformed(pl.col(name), transform)
        stats = train.select(values.mean().alias("mean"), values.std().alias("std")).row(0)
        mean, std = (float(stats[0] or 0.0), float(stats[1] or 0.0))
        specs.append(
            FeatureSpec(
                name,
                "dense",
                str(train.schema[name]),
                transform=transform,
                mean=mean,
                std=std if std > 1e-12 else 1.0,
                description=descriptions.get(name, ""),
                source=sources.get(name, ""),
            )
        )
    return tuple(specs)


def _transformed(column: pl.Expr, transform: str) -> pl.Expr:
    column = column.cast(pl.Float64)
    if transform == "log1p":
        return column.sign() * column.abs().log1p()
    return column


def _check_finite(frame: pl.DataFrame, columns: list[str], table: str) -> None:
    """A missing value (null, NaN) is encoded as the mean; an infinity has no meaning and would score NaN."""
    floats = [c for c in columns if frame.schema[c].is_float()]
    if not floats:
        return
    counts = frame.select(pl.col(c).is_infinite().sum() for c in floats).row(0)
    bad = {c: n for c, n in zip(floats, counts, strict=True) if n}
    if bad:
        column, n = next(iter(bad.items()))
        raise InputError(f"table '{table}' column '{column}': {n} infinite value(s); give a finite value or null")


def encode_features(frame: pl.DataFrame, schema: DatasetSchema, table: str = "input") -> EncodedFeatures:
    """Turn raw feature columns into model inputs, vectorised; bad columns raise naming `table`."""
    check_columns(table, frame.schema, {f.name: SPARSE_RAW_DTYPES for f in schema.sparse_features})
    check_columns(table, frame.schema, {f.name: NUMERIC + (pl.Boolean,) for f in schema.dense_features})
    _check_finite(frame, [f.name for f in schema.dense_features], table)
    sparse_columns = [
        _hashed(frame, f)
        if f.hash_buckets
        else pl.col(f.name)
        .cast(pl.String)
        .replace_strict(list(f.vocabulary), list(range(1, f.num_embeddings)), default=0, return_dtype=pl.Int64)
        .alias(f.name)
        for f in schema.sparse_features
    ]
    dense_columns = [
        ((_transformed(pl.col(f.name), f.transform) - f.mean) / f.std).fill_null(0.0).fill_nan(0.0).cast(pl.Float32)
        for f in schema.dense_features
    ]
    n = frame.height
    sparse_ids = (
        frame.select(sparse_columns).to_numpy().astype(np.int64, copy=False)
        if sparse_columns
        else np.zeros((n, 0), np.int64)
    )
    dense = (
        frame.select(dense_columns).to_numpy().astype(np.float32, copy=False)
        if dense_columns
        else np.zeros((n, 0), np.float32)
    )
    return EncodedFeatures(np.ascontiguousarray(sparse_ids), np.ascontiguousarray(dense))


def bucket_of(value: str, buckets: int) -> int:
    """A value's hash bucket id, 1..buckets: CRC-32 of its UTF-8 text, stable across machines and versions."""
    return 1 + zlib.crc32(value.encode()) % buckets


def _hashed(frame: pl.DataFrame, feature: FeatureSpec) -> pl.Expr:
    """The bucket ids of a hashed feature's column (0 when missing), hashing each distinct value once."""
    values = frame[feature.name].cast(pl.String).drop_nulls().unique().to_list()
    ids = [bucket_of(value, feature.hash_buckets) for value in values]
    column = pl.col(feature.name).cast(pl.String)
    return column.replace_strict(values, ids, default=0, return_dtype=pl.Int64).alias(feature.name)


def encode_targets(frame: pl.DataFrame, schema: DatasetSchema, table: str = "input") -> tuple[np.ndarray, np.ndarray]:
    """Labels and masks for every task: two [N, n_tasks] float32 arrays; a masked label is set to 0.

    Binary labels become 0.0 / 1.0, continuous labels keep their real values; a continuous task's null or
    NaN label is masked (there is no value to learn from).
    """
    required = {t.label_column: NUMERIC + (pl.Boolean,) for t in schema.tasks}
    required |= {t.mask_column: NUMERIC + (pl.Boolean,) for t in schema.tasks if t.mask_column}
    check_columns(table, frame.schema, required)
    masks, labels = [], []
    for task in schema.tasks:
        # pl.repeat, not pl.lit: when no task has a mask column a literal would collapse to one row.
        mask = (
            pl.col(task.mask_column).cast(pl.Float32).fill_null(0.0)
            if task.mask_column
            else pl.repeat(1.0, pl.len(), dtype=pl.Float32)
        )
        label = pl.col(task.label_column).cast(pl.Float32)
        if schema.objective(task.objective).kind == "continuous":
            label = label.fill_nan(None)
            mask = mask * label.is_not_null().cast(pl.Float32)
        masks.append(mask.alias(task.name))
        labels.append(label.fill_null(0.0).alias(task.name))
    mask_array = frame.select(masks).to_numpy()
    label_array = frame.select(labels).to_numpy()
    return np.ascontiguousarray(label_array * mask_array, dtype=np.float32), np.array(mask_array, np.float32, order="C")
