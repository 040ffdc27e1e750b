"""A whole build: split files, schema.json, the report, the command line, and partition invariance."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from mtr.cli import main
from mtr.data.build import BuildConfig, build_dataset_from_events
from mtr.data.feature_config import SIMULATOR_FEATURES
from mtr.data.preprocess import encode_features, encode_targets
from mtr.data.synthetic import synthetic_event_log, write_event_log
from mtr.errors import InputError
from mtr.schema import DatasetSchema, messaging_tasks

SPARSE_FEATURES, DENSE_FEATURES = SIMULATOR_FEATURES.sparse, tuple(SIMULATOR_FEATURES.dense)


def test_schema_declares_the_14_tasks_and_split_files_hold_the_expected_rows(build, tmp_path: Path) -> None:
    rows, schema = build()
    assert schema.task_names == [t.name for t in messaging_tasks()] and len(schema.tasks) == 14
    # 8 opportunity days: days 0-20 train (6 days), day 40 validation, day 44 test.
    assert schema.metadata["rows"] == {"train": 7, "validation": 1, "test": 1}
    assert schema.metadata["split_days"]["validation"] == {"first": "2024-02-10", "last": "2024-02-10"}
    assert rows.group_by("split").agg(pl.col("row_id").sort()).sort("split").rows() == [
        ("test", [8]),
        ("train", [1, 2, 3, 4, 5, 6, 9]),
        ("validation", [7]),
    ]
    assert (schema.action_column, schema.channel_column, schema.propensity_column) == (
        "action",
        "channel",
        "propensity",
    )
    assert schema.value_columns == ("conversion_value",)
    assert [f.name for f in schema.features] == [*SPARSE_FEATURES, *DENSE_FEATURES]
    assert len(schema.metadata["fingerprint"]) == 64


def test_metadata_rates_count_only_labelled_rows(build) -> None:
    _, schema = build()
    train = schema.metadata["rates"]["train"]
    # Train push rows: opp 1 (no conversion) and opp 4 (converted); both windows have ended.
    assert train["conversion_push"] == {"labelled": 2, "mask_rate": pytest.approx(2 / 7), "positive_rate": 0.5}
    # Train no-sends: opps 3, 5 and 9; only opp 5 converted.
    assert train["conversion_none"]["positive_rate"] == pytest.approx(1 / 3)
    # Opp 6's retention has not matured, so in-app retention has no label at all.
    assert train["retention_in_app"] == {"labelled": 0, "mask_rate": 0.0, "positive_rate": None}


def test_schema_round_trips_and_encodes_the_train_split(build, tmp_path: Path) -> None:
    rows, schema = build()
    schema.save(tmp_path)
    loaded = DatasetSchema.load(tmp_path)
    assert loaded == schema
    train = rows.filter(pl.col("split") == "train")
    encoded = encode_features(train, loaded)
    assert encoded.sparse_ids.shape == (7, len(SPARSE_FEATURES))
    assert encoded.dense.shape == (7, len(DENSE_FEATURES))
    message_id = SPARSE_FEATURES.index("message_id")
    no_send = train["channel"].to_numpy() == "none"
    assert (encoded.sparse_ids[no_send, message_id] == 0).all() and (encoded.sparse_ids[~no_send, message_id] > 0).all()
    labels, masks = encode_targets(train, loaded)
    assert masks.shape == (7, 14) and masks.sum() == sum(
        t["labelled"] for t in schema.metadata["rates"]["train"].values()
    )
    assert labels[masks == 0].sum() == 0


def test_command_line_builds_prints_the_report_and_rejects_a_misspelt_field(write_log, tmp_path, capsys) -> None:
    events = write_log()
    every_day = ["--build.matured_splits", "false", "--build.embargo_days", "1"]
    main(
        [
            "build-dataset",
            "--events",
            str(events),
            "--out",
            str(tmp_path / "cli"),
            "--build.partitions",
            "2",
            *every_day,
        ]
    )
    printed = capsys.readouterr().out
    assert "rows: train 7, validation 1, test 1" in printed
    assert "embargo 1 d, longest label horizon 29 d (retention)" in printed
    assert "conversion_push" in printed and "0.5000" in printed
    assert DatasetSchema.load(tmp_path / "cli").metadata["config"]["partitions"] == 2
    with pytest.raises(SystemExit):
        main(["build-dataset", "--events", str(events), "--out", str(tmp_path / "typo"), "--build.partitons", "2"])
    assert "partitons" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_partitioning_users_does_not_change_a_single_value(tmp_path: Path) -> None:
    tables, start, end = synthetic_event_log(users=300, days=20, seed=3)
    events = write_event_log(tmp_path / "events", tables, start, end)
    outputs = {}
    for partitions in (1, 3):
        schema = build_dataset_from_events(
            events,
            tmp_path / f"p{partitions}",
            BuildConfig(partitions=partitions, matured_splits=False, embargo_days=1),
        )
        outputs[partitions] = (schema, pl.read_parquet(schema.split_path(tmp_path / f"p{partitions}", "train")))
    (schema_1, train_1), (schema_3, train_3) = outputs[1], outputs[3]
    assert train_1.height == schema_1.metadata["rows"]["train"] > 3000
    assert train_1.sort("row_id").equals(train_3.sort("row_id"))
    # Same encodings; the fitted means and stds differ only by float summation order.
    for spec_1, spec_3 in zip(schema_1.features, schema_3.features, strict=True):
        assert (spec_1.name, spec_1.vocabulary) == (spec_3.name, spec_3.vocabulary)
        assert (spec_1.mean, spec_1.std) == pytest.approx((spec_3.mean, spec_3.std), rel=1e-12)
    assert schema_1.metadata["rates"] == schema_3.metadata["rates"]
    # Split by time: every train decision precedes every validation decision.
    validation = pl.read_parquet(schema_1.split_path(tmp_path / "p1", "validation"))
    assert train_1["ts"].max() < validation["ts"].min()


def test_a_log_too_short_for_matured_embargoed_splits_is_refused_naming_the_longest_label(write_log, tmp_path) -> None:
    with pytest.raises(
        InputError, match=r"spans 8 day\(s\), 5 of them with matured labels.*29 days, objective 'retention'"
    ):
        build_dataset_from_events(write_log(), tmp_path / "dataset")
    assert not (tmp_path / "dataset").exists()
