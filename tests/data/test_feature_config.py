"""The declared feature set (`mtr build-dataset --features FILE`): the simulator's file is the default set, the
YAML form round-trips, every mistake is a named error, and a dataset has exactly the declared features."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from foreign_log.world import FEATURES_YAML
from mtr.cli import main
from mtr.data.feature_config import SIMULATOR_FEATURES, FeatureConfig, HistoryCount, TableFeatures
from mtr.errors import InputError
from mtr.schema import DatasetSchema

REPO_ROOT = Path(__file__).resolve().parents[2]
SIMULATOR_YAML = REPO_ROOT / "configs" / "features" / "simulator.yaml"


def test_the_simulators_file_is_the_default_feature_set() -> None:
    assert FeatureConfig.load(SIMULATOR_YAML) == SIMULATOR_FEATURES


@pytest.mark.parametrize(
    "config",
    [
        SIMULATOR_FEATURES,
        FeatureConfig.load(FEATURES_YAML),
        FeatureConfig(),
        FeatureConfig(
            users=TableFeatures(sparse=("a",), dense={"b": "log1p"}),
            opportunities=TableFeatures(dense={"c": "identity"}),
            windows_days=(3,),
            counts=(HistoryCount("sends", windows_days=(1, 14), recency=True), HistoryCount("activity")),
        ),
    ],
    ids=["simulator", "foreign", "empty", "custom"],
)
def test_to_dict_and_from_dict_round_trip_through_yaml(config: FeatureConfig) -> None:
    assert FeatureConfig.from_dict(config.to_dict()) == config
    assert FeatureConfig.from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


def simulator_dict() -> dict[str, Any]:
    """A fresh copy of the simulator's YAML form, to break one field of."""
    return SIMULATOR_FEATURES.to_dict()


def edited(**changes: Any) -> dict[str, Any]:
    """The simulator's form with `changes` applied to its top-level fields."""
    return {**simulator_dict(), **changes}


def with_history(**changes: Any) -> dict[str, Any]:
    """The simulator's form with `changes` applied to its `history` field."""
    raw = simulator_dict()
    raw["history"] = {**raw["history"], **changes}
    return raw


BAD_CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "unknown_top_level_field": (
        edited(user={"sparse": ["country"]}),
        r"unknown field\(s\) \['user'\]",
    ),
    "unknown_nested_field": (
        edited(users={"sparse": ["country"], "numeric": {}}),
        r"unknown field\(s\) \['users\.numeric'\]",
    ),
    "unknown_transform": (
        edited(users={"sparse": [], "dense": {"age": "sqrt"}}),
        r"field 'users\.dense\.age': transform must be one of \['identity', 'log1p'\], got 'sqrt'",
    ),
    "per_channel_on_conversions": (
        with_history(counts=[{"table": "conversions", "per_channel": True}]),
        r"field 'history\.counts\[0\]\.per_channel': table 'conversions' has no channel",
    ),
    "per_channel_on_activity": (
        with_history(counts=[{"table": "activity", "per_channel": True}]),
        r"field 'history\.counts\[0\]\.per_channel': table 'activity' has no channel",
    ),
    "window_of_zero": (
        with_history(windows_days=[7, 0]),
        r"field 'history\.windows_days' must list whole days >= 1, got \(7, 0\)",
    ),
    "count_window_of_zero": (
        with_history(counts=[{"table": "sends", "windows_days": [0]}]),
        r"field 'history\.counts\[0\]\.windows_days' must list whole days >= 1",
    ),
    "no_windows": (
        with_history(windows_days=[]),
        r"field 'history\.windows_days' must list whole days >= 1",
    ),
    "reserved_user_id": (
        edited(users={"sparse": ["user_id", "country"]}),
        r"field 'users': \['user_id'\] are keys, actions or columns of the dataset, not attributes",
    ),
    "reserved_propensity": (
        edited(opportunities={"dense": {"propensity": "identity"}}),
        r"field 'opportunities': \['propensity'\] are keys, actions or columns of the dataset, not attributes",
    ),
    "hashed_into_no_buckets": (
        edited(messages={"hashed": {"creative": 0}}),
        r"field 'messages\.hashed\.creative': buckets must be a whole number >= 1, got 0",
    ),
    "another_tables_column": (  # joined into one row, it would be the logging policy's propensity
        edited(users={"dense": {"propensity": "identity"}}),
        r"field 'users': \['propensity'\] are keys, actions or columns of the dataset, not attributes",
    ),
    "duplicate_sparse_across_tables": (
        edited(users={"sparse": ["country"]}, messages={"sparse": ["country"]}),
        r"feature name\(s\) \['country'\] are declared twice",
    ),
    "duplicate_sparse_and_dense": (
        edited(users={"sparse": ["country"], "dense": {"country": "identity"}}),
        r"feature name\(s\) \['country'\] are declared twice",
    ),
    "duplicate_dense_across_tables": (
        edited(users={"dense": {"score": "identity"}}, messages={"dense": {"score": "log1p"}}),
        r"feature name\(s\) \['score'\] are declared twice",
    ),
    "clash_with_a_built_in": (
        edited(users={"sparse": ["day_of_week"]}),
        r"feature name\(s\) \['day_of_week'\] are declared twice \(or clash with built-ins\)",
    ),
    "count_declared_twice": (
        with_history(counts=[{"table": "sends"}, {"table": "sends", "windows_days": [28]}]),
        r"feature name\(s\) \['sends_28d'\] are declared twice",
    ),
    "missing_count_table": (
        with_history(counts=[{"windows_days": [7]}]),
        r"field 'history\.counts\[0\]\.table' is missing",
    ),
    "unknown_count_table": (
        with_history(counts=[{"table": "purchases"}]),
        r"field 'history\.counts\[0\]\.table' must be one of \['sends', 'engagements', 'conversions', 'activity'\]",
    ),
    "windows_not_a_list": (
        with_history(windows_days=7),
        r"field 'history\.windows_days' must list whole days >= 1, got 7",
    ),
    "count_windows_not_a_list": (
        with_history(counts=[{"table": "sends", "windows_days": 7}]),
        r"field 'history\.counts\[0\]\.windows_days' must list whole days >= 1, got 7",
    ),
    "sparse_not_a_list": (
        edited(users={"sparse": "country"}),
        r"field 'users\.sparse' must be a list of column names",
    ),
    "top_level_not_a_mapping": (
        ["users"],  # type: ignore[dict-item]
        r"field '\(top level\)' must be a mapping",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_bad_feature_config_is_a_named_error(case: str, tmp_path: Path) -> None:
    raw, problem = BAD_CONFIGS[case]
    with pytest.raises(InputError, match=rf"^feature config: .*{problem}"):
        FeatureConfig.from_dict(raw)
    # The same mistake in a file is named with the file.
    path = tmp_path / "features.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(InputError, match=rf"^feature config {re.escape(str(path))}: .*{problem}"):
        FeatureConfig.load(path)


def test_invalid_yaml_is_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text("users:\n  sparse: [country, plan\nmessages: {}\n")
    with pytest.raises(InputError, match=rf"^feature config {re.escape(str(path))} is not valid YAML"):
        FeatureConfig.load(path)


def test_a_missing_file_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=rf"^feature config not found: {re.escape(str(tmp_path / 'nowhere.yaml'))}"):
        FeatureConfig.load(tmp_path / "nowhere.yaml")


def test_build_dataset_refuses_a_bad_feature_config_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "features.yaml"
    path.write_text(yaml.safe_dump(edited(users={"sparse": ["user_id"]})))
    with pytest.raises(InputError, match=r"\['user_id'\] are keys, actions or columns of the dataset"):
        main(["build-dataset", "--events", str(tmp_path / "no_events"), "--out", str(tmp_path / "d")]
             + ["--features", str(path)])  # fmt: skip
    assert not (tmp_path / "d").exists()


# --- a dataset built with a declared feature set ---------------------------------------------------------------


@pytest.fixture(scope="module")
def declared() -> FeatureConfig:
    """The simulator's set with the messages' `headline_length` as a dense feature and without `topic`."""
    raw = simulator_dict()
    raw["messages"] = {"sparse": ["message_type", "has_discount"], "dense": {"headline_length": "identity"}}
    return FeatureConfig.from_dict(raw)


@pytest.fixture(scope="module")
def declared_dataset(declared: FeatureConfig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("declared")
    config = root / "features.yaml"
    config.write_text(yaml.safe_dump(declared.to_dict()))
    main(["simulate", "--users", "300", "--days", "40", "--seed", "1", "--out", str(root / "events")])
    main(["build-dataset", "--events", str(root / "events"), "--out", str(root / "dataset")]
         + ["--features", str(config), "--build.embargo_days", "1", "--build.partitions", "1"])  # fmt: skip
    return root / "dataset"


def test_a_dataset_has_exactly_the_declared_features(declared: FeatureConfig, declared_dataset: Path) -> None:
    schema = DatasetSchema.load(declared_dataset)
    names = [f.name for f in schema.features]
    assert set(names) == {*declared.sparse, *declared.dense} and len(names) == len(set(names))
    assert "headline_length" in names and "topic" not in names
    features = {f.name: f for f in schema.features}
    assert features["headline_length"].source == "messages" and features["message_type"].source == "messages"
    assert features["country"].source == "users" and features["channel"].source == "action"
    assert schema.metadata["features"] == declared.to_dict()
    # The split rows and the candidates carry the declared message attributes of their own message.
    train = pl.read_parquet(schema.split_path(declared_dataset, "train"))
    assert "headline_length" in train.columns and "topic" not in train.columns
    candidates = pl.read_parquet(declared_dataset / "candidates.parquet")
    assert "headline_length" in candidates.columns and "topic" not in candidates.columns
    messages = pl.read_parquet(declared_dataset.parent / "events" / "messages.parquet")
    sends = candidates.filter(pl.col("channel") != "none").join(
        messages.select("message_id", pl.col("headline_length").alias("of_message")), on="message_id"
    )
    assert sends.height and (sends["headline_length"] == sends["of_message"]).all()
    assert candidates.filter(pl.col("channel") == "none")["headline_length"].null_count() > 0
