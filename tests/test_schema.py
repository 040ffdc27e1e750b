import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.data.preprocess import encode_features, encode_targets, fit_features
from mtr.errors import InputError
from mtr.io import atomic_output_dir
from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.schema import DatasetSchema, TaskSpec, messaging_tasks


def _schema(train: pl.DataFrame) -> DatasetSchema:
    features = fit_features(train, sparse=["country", "hour"], dense={"spend": "log1p"})
    return DatasetSchema("toy", features, (TaskSpec("click", "engagement", None, "y", "m"),))


def test_messaging_tasks_cover_every_objective_and_channel():
    names = [t.name for t in messaging_tasks()]
    assert len(names) == 14
    assert "unsubscribe_in_app" in names and "conversion_none" in names and "engagement_none" not in names


def test_schema_round_trips_and_rejects_unknown_fields(tmp_path):
    train = pl.DataFrame({"country": ["de", "fr", "de"], "hour": [8, 12, 8], "spend": [0.0, 10.0, 3.0]})
    schema = _schema(train)
    schema.save(tmp_path)
    assert DatasetSchema.load(tmp_path) == schema
    raw = json.loads((tmp_path / "schema.json").read_text())
    raw["tasks"][0]["lable_column"] = "y"
    (tmp_path / "schema.json").write_text(json.dumps(raw))
    with pytest.raises(InputError, match=r"tasks\[0\].*lable_column"):
        DatasetSchema.load(tmp_path)


def test_encoding_maps_unknown_values_to_zero_and_standardises_on_train():
    train = pl.DataFrame({"country": ["de", "fr", "de"], "hour": [8, 12, 8], "spend": [0.0, 10.0, 3.0]})
    schema = _schema(train)
    rows = pl.DataFrame({"country": ["fr", "xx", None], "hour": [12, 8, 99], "spend": [10.0, None, 0.0]})
    encoded = encode_features(rows, schema)
    # vocabularies are sorted as strings: hour "12" gets id 1, "8" id 2
    assert encoded.sparse_ids.tolist() == [[2, 1], [0, 2], [0, 0]]
    logged = np.sign([0.0, 10.0, 3.0]) * np.log1p([0.0, 10.0, 3.0])
    expected = (np.log1p(10.0) - logged.mean()) / logged.std(ddof=1)
    assert encoded.dense[0, 0] == pytest.approx(expected, rel=1e-5)
    assert encoded.dense[1, 0] == 0.0  # a missing value sits at the train mean


def test_encoding_names_the_table_and_column_on_bad_input():
    train = pl.DataFrame({"country": ["de"], "hour": [8], "spend": [1.0]})
    schema = _schema(train)
    with pytest.raises(InputError, match="table 'candidates' has no column 'spend'"):
        encode_features(pl.DataFrame({"country": ["de"], "hour": [8]}), schema, table="candidates")
    with pytest.raises(InputError, match="column 'spend' has dtype String"):
        encode_features(pl.DataFrame({"country": ["de"], "hour": [8], "spend": ["1"]}), schema, table="candidates")


def test_masked_labels_are_zeroed():
    train = pl.DataFrame({"country": ["de"], "hour": [8], "spend": [1.0]})
    schema = _schema(train)
    labels, masks = encode_targets(pl.DataFrame({"y": [1, 1, 0], "m": [1, 0, 1]}), schema)
    assert labels[:, 0].tolist() == [1.0, 0.0, 0.0] and masks[:, 0].tolist() == [1.0, 0.0, 1.0]


def test_continuous_labels_keep_their_values_and_missing_ones_are_masked(tmp_path: Path) -> None:
    train = pl.DataFrame({"country": ["de"], "hour": [8], "spend": [1.0]})
    features = fit_features(train, sparse=["country", "hour"], dense={"spend": "log1p"})
    spend = Objective("spend", kind="continuous", label_rule="conversion_value")
    tasks = (TaskSpec("click", "engagement", None, "y", "m"), TaskSpec("spend", "spend", None, "v", "m"))
    schema = DatasetSchema("toy", features, tasks, objectives=(spend,))
    frame = pl.DataFrame({"y": [1, 0, 1, 0], "v": [27.5, None, float("nan"), 3.25], "m": [1, 1, 1, 0]})
    labels, masks = encode_targets(frame, schema)
    assert labels[:, 1].tolist() == [27.5, 0.0, 0.0, 0.0] and masks[:, 1].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert masks[:, 0].tolist() == [1.0, 1.0, 1.0, 0.0]  # the binary task keeps its mask column
    # The table travels with the schema: a reloaded schema still knows "spend" is continuous.
    schema.save(tmp_path)
    assert DatasetSchema.load(tmp_path).objective("spend").kind == "continuous"


def test_messaging_tasks_of_a_longer_table_add_the_objective_on_every_channel_and_none() -> None:
    value = Objective("purchase_value", kind="continuous", exists_for_none=True, label_rule="conversion_value")
    names = [t.name for t in messaging_tasks((*MESSAGING_OBJECTIVES, value))]
    # Channel by channel, objectives in table order; then the organic outcomes.
    assert len(names) == 18
    first_channel = ["conversion_push", "engagement_push", "retention_push", "unsubscribe_push", "purchase_value_push"]
    assert names[:5] == first_channel
    assert names[-3:] == ["conversion_none", "retention_none", "purchase_value_none"]


def test_atomic_output_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "dataset"
    with pytest.raises(RuntimeError):
        with atomic_output_dir(out, "test") as tmp:
            (tmp / "half.parquet").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output_dir(out, "test") as tmp:
        (tmp / "done.txt").write_text("ok")
    assert (out / "done.txt").read_text() == "ok"
