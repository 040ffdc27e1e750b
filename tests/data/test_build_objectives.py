"""`mtr build-dataset --objectives`: a dataset's objective table comes from the command line or a config file."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import yaml

from mtr.cli import main
from mtr.errors import InputError
from mtr.schema import DatasetSchema

TABLE = [
    {"name": "conversion", "exists_for_none": True, "value_scaled": True},
    {"name": "unsubscribe", "direction": "minimize"},
    {"name": "purchase_value", "kind": "continuous", "exists_for_none": True, "label_rule": "conversion_value"},
]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("objectives_world") / "events"
    main(["simulate", "--users", "300", "--days", "112", "--seed", "2", "--out", str(out)])
    return out


def test_the_objective_table_of_a_config_file_makes_the_tasks_and_labels(events: Path, tmp_path: Path) -> None:
    config = tmp_path / "objectives.yaml"
    config.write_text(yaml.safe_dump({"objectives": TABLE}))
    main(["build-dataset", "--events", str(events), "--out", str(tmp_path / "dataset"), "--config", str(config)])
    schema = DatasetSchema.load(tmp_path / "dataset")
    assert schema.objective_names == ("conversion", "unsubscribe", "purchase_value")
    assert [t.name for t in schema.tasks if t.channel == "none"] == ["conversion_none", "purchase_value_none"]
    train = pl.read_parquet(schema.split_path(tmp_path / "dataset", "train"))
    assert "label_engagement" not in train.columns and train["label_purchase_value"].dtype == pl.Float64
    assert train["label_purchase_value"].max() > 1.0  # a value, not a 0/1 label


def test_an_unknown_label_rule_is_refused_naming_it(events: Path, tmp_path: Path) -> None:
    bad = '[{"name": "refund", "kind": "continuous", "label_rule": "refund_amount"}]'
    with pytest.raises(InputError, match="refund_amount"):
        main(["build-dataset", "--events", str(events), "--out", str(tmp_path / "dataset"), "--objectives", bad])
    assert not (tmp_path / "dataset").exists()
