"""Public data adapters: published figures recomputed from the prepared tables, encodings, bad input, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.cli import main
from mtr.data.adapters import census, hillstrom, open_bandit
from mtr.data.adapters.output import with_split
from mtr.data.adapters.source import dataset_source
from mtr.data.preprocess import encode_features, encode_targets
from mtr.errors import InputError
from mtr.schema import SPLITS, DatasetSchema

HILLSTROM_SHA256 = "0e5893329d8b93cefecc571777672028290ab69865718020c78c7284f291aece"  # from the data README


def read_all(folder: Path) -> pl.DataFrame:
    """Every split of a prepared dataset in one frame, with a `split` column."""
    schema = DatasetSchema.load(folder)
    return pl.concat(
        [pl.read_parquet(schema.split_path(folder, s)).with_columns(pl.lit(s).alias("split")) for s in SPLITS]
    )


@pytest.fixture(scope="module")
def hillstrom_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hillstrom") / "dataset"
    hillstrom.prepare_hillstrom(out, data_dir / hillstrom.FOLDER, seed=7)
    return out


@pytest.fixture(scope="module")
def census_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("census") / "dataset"
    census.prepare_census(out, data_dir / census.FOLDER, seed=3)
    return out


@pytest.fixture(scope="module", params=["all", "men", "women"])
def open_bandit_dir(request: pytest.FixtureRequest, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp(f"open_bandit_{request.param}") / "dataset"
    open_bandit.prepare_open_bandit(out, data_dir / open_bandit.FOLDER, campaign=request.param)
    return out


# ---------------------------------------------------------------- hillstrom


def test_hillstrom_reproduces_the_published_arm_rates(hillstrom_dir: Path) -> None:
    rows = read_all(hillstrom_dir)
    assert rows.height == 64_000
    arms = rows.group_by("action").agg(
        pl.len().alias("n"),
        pl.col("label_engagement").mean().round(4).alias("visit"),
        pl.col("label_conversion").mean().round(4).alias("conversion"),
        pl.col("channel").unique().alias("channels"),
    )
    by_arm = {row["action"]: row for row in arms.iter_rows(named=True)}
    assert {a: (r["visit"], r["conversion"]) for a, r in by_arm.items()} == {
        "mens_email": (0.1828, 0.0125),
        "womens_email": (0.1514, 0.0088),
        "none": (0.1062, 0.0057),
    }
    assert {a: r["n"] for a, r in by_arm.items()} == {"mens_email": 21_307, "womens_email": 21_387, "none": 21_306}
    assert by_arm["mens_email"]["channels"] == ["email"] and by_arm["none"]["channels"] == ["none"]
    assert rows["propensity"].unique().to_list() == pytest.approx([1 / 3])


def test_hillstrom_masks_email_tasks_to_email_arms_and_stratifies_the_split(hillstrom_dir: Path) -> None:
    rows = read_all(hillstrom_dir)
    schema = DatasetSchema.load(hillstrom_dir)
    assert rows.filter(pl.col("action") == "none")["mask_email"].sum() == 0
    assert (rows["mask_email"] + rows["mask_none"]).unique().to_list() == [1]
    shares = rows.group_by("action", "split").len().with_columns(pl.col("len") / pl.col("len").sum().over("action"))
    for split, share in {"train": 0.70, "validation": 0.15, "test": 0.15}.items():
        assert shares.filter(pl.col("split") == split)["len"].to_numpy() == pytest.approx(share, abs=1e-4)
    assert rows["row_id"].n_unique() == 64_000 and rows["row_id"].dtype == pl.Int64
    assert "purchase_channel" in [f.name for f in schema.sparse_features] and schema.features[0].name == "action"
    assert schema.metadata["sources"] == {hillstrom.FILE: HILLSTROM_SHA256}
    assert schema.metadata["rows"] == {"train": 44_800, "validation": 9_600, "test": 9_600}
    # The metadata rates are the tables' rates among labelled rows.
    train = rows.filter(pl.col("split") == "train", pl.col("mask_none") == 1)
    assert schema.metadata["positive_rate"]["engagement_none"]["train"] == pytest.approx(
        train["label_engagement"].mean()
    )


def test_hillstrom_split_is_reproducible_with_the_seed(hillstrom_dir: Path, data_dir: Path) -> None:
    source = data_dir / hillstrom.FOLDER
    split_of = read_all(hillstrom_dir).sort("row_id")["split"]
    same = hillstrom.build_hillstrom(source, seed=7).rows.sort("row_id")["split"]
    other = hillstrom.build_hillstrom(source, seed=8).rows.sort("row_id")["split"]
    assert split_of.equals(same)
    assert (split_of != other).mean() > 0.3


# ---------------------------------------------------------------- census


def test_census_reproduces_the_mmoe_counts(census_dir: Path) -> None:
    rows = read_all(census_dir)
    counts = rows.group_by(pl.col("split") == "train").agg(
        pl.len(), pl.col("label_income").sum(), pl.col("label_marital").sum()
    )
    train = counts.filter(pl.col("split")).row(0, named=True)
    held_out = counts.filter(~pl.col("split")).row(0, named=True)
    assert (train["len"], train["label_income"], train["label_marital"]) == (199_523, 12_382, 86_485)
    assert (held_out["len"], held_out["label_income"]) == (99_762, 6_186)
    sizes = rows.group_by("split").len()
    assert sorted(sizes.filter(pl.col("split") != "train")["len"].to_list()) == [49_881, 49_881]
    # '?' is missing: the README counts 708 missing state_prev_res in train.
    assert rows.filter(pl.col("split") == "train")["state_prev_res"].null_count() == 708


def test_census_inputs_follow_the_protocol(census_dir: Path) -> None:
    schema = DatasetSchema.load(census_dir)
    names = {f.name for f in schema.features}
    assert not names & {"education", "marital_stat", "instance_weight", "income_50k", "label_income"}
    assert {f.name for f in schema.dense_features} == set(census.DENSE)
    assert {"det_ind_code", "det_occ_code", "own_or_self", "vet_benefits", "year"} <= {
        f.name for f in schema.sparse_features
    }
    assert len(schema.features) == 38
    assert [(t.name, t.channel, t.mask_column) for t in schema.tasks] == [
        ("income", None, None),
        ("marital", None, None),
    ]
    assert set(schema.metadata["sources"]) == {census.TRAIN_FILE, census.TEST_FILE}


def test_census_split_is_reproducible_with_the_seed(census_dir: Path, data_dir: Path) -> None:
    validation = pl.read_parquet(census_dir / "validation.parquet")["row_id"].sort()
    same = census.build_census(data_dir / census.FOLDER, seed=3).rows
    other = census.build_census(data_dir / census.FOLDER, seed=4).rows
    assert same.filter(pl.col("split") == "validation")["row_id"].sort().equals(validation)
    assert not other.filter(pl.col("split") == "validation")["row_id"].sort().equals(validation)


# ---------------------------------------------------------------- open bandit

PUBLISHED_CTR = {
    "all": {"random": 0.0038, "bts": 0.0042},
    "men": {"random": 0.0046, "bts": 0.0069},
    "women": {"random": 0.0046, "bts": 0.0046},
}
N_ITEMS = {"all": 80, "men": 34, "women": 46}


def test_open_bandit_reproduces_the_published_ctr_and_propensity(open_bandit_dir: Path) -> None:
    schema = DatasetSchema.load(open_bandit_dir)
    campaign = schema.metadata["campaign"]
    rows = read_all(open_bandit_dir)
    per_policy = rows.group_by("policy").agg(pl.len(), pl.col("click").mean().round(4).alias("ctr"))
    assert dict(per_policy.select("policy", "len").iter_rows()) == {"random": 10_000, "bts": 10_000}
    assert dict(per_policy.select("policy", "ctr").iter_rows()) == PUBLISHED_CTR[campaign]
    random_propensity = rows.filter(pl.col("policy") == "random")["propensity"].unique().to_list()
    assert random_propensity == pytest.approx([1 / N_ITEMS[campaign]])
    assert schema.action_column == "action" and rows["action"].dtype == pl.String
    assert rows["position"].unique().sort().to_list() == [1, 2, 3]


def test_open_bandit_splits_by_time_within_each_policy(open_bandit_dir: Path) -> None:
    rows = read_all(open_bandit_dir)
    spans = rows.group_by("policy", "split").agg(
        pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last"), pl.len()
    )
    for policy in ("random", "bts"):
        span = {r["split"]: r for r in spans.filter(pl.col("policy") == policy).iter_rows(named=True)}
        assert [span[s]["len"] for s in SPLITS] == [7_000, 1_500, 1_500]
        assert span["train"]["last"] <= span["validation"]["first"]
        assert span["validation"]["last"] <= span["test"]["first"]


def test_open_bandit_affinity_is_the_shown_items_column(data_dir: Path) -> None:
    # Recomputed another way: unpivot the raw affinity matrix and keep the column named after the item.
    path = data_dir / open_bandit.FOLDER / "random" / "all" / "all.csv.gz"
    raw = pl.read_csv(path).rename({"": "line"})
    expected = (
        raw.unpivot(index=["line", "item_id"], on=pl.selectors.starts_with("user-item_affinity_"))
        .filter(pl.col("variable") == pl.format("user-item_affinity_{}", pl.col("item_id")))
        .sort("line")["value"]
    )
    built = open_bandit.build_open_bandit(data_dir / open_bandit.FOLDER, "all").rows
    assert built.filter(pl.col("policy") == "random").sort("row_id")["user_item_affinity"].to_list() == (
        expected.to_list()
    )
    assert expected.sum() > 0  # the check would be vacuous on an all-zero column


# ---------------------------------------------------------------- every adapter


def check_every_split_encodes(folder: Path) -> DatasetSchema:
    """encode_features / encode_targets on each split: shapes, no NaNs, ids in range, masks as in the metadata."""
    schema = DatasetSchema.load(folder)
    sizes = np.array([f.num_embeddings for f in schema.sparse_features])
    row_ids = []
    for split in SPLITS:
        frame = pl.read_parquet(schema.split_path(folder, split))
        encoded = encode_features(frame, schema, table=split)
        labels, masks = encode_targets(frame, schema, table=split)
        assert encoded.sparse_ids.shape == (frame.height, len(schema.sparse_features))
        assert encoded.dense.shape == (frame.height, len(schema.dense_features))
        assert labels.shape == masks.shape == (frame.height, len(schema.tasks))
        assert not np.isnan(encoded.dense).any() and not np.isnan(labels).any()
        assert masks.flags.writeable  # torch.from_numpy warns on read-only arrays
        assert (encoded.sparse_ids >= 0).all() and (encoded.sparse_ids < sizes).all()
        assert masks.sum(axis=0).tolist() == [schema.metadata["labelled"][t.name][split] for t in schema.tasks]
        row_ids.append(frame[schema.row_id_column])
    assert pl.concat(row_ids).n_unique() == sum(len(r) for r in row_ids)
    # Standardised on train: each dense train column has mean 0.
    train = encode_features(pl.read_parquet(schema.split_path(folder, "train")), schema)
    assert np.abs(train.dense.mean(axis=0, dtype=np.float64)).max() < 1e-4
    return schema


def test_hillstrom_splits_encode(hillstrom_dir: Path) -> None:
    check_every_split_encodes(hillstrom_dir)


def test_census_splits_encode(census_dir: Path) -> None:
    schema = check_every_split_encodes(census_dir)
    test = encode_features(pl.read_parquet(schema.split_path(census_dir, "test")), schema)
    # A missing '?' maps to the unknown id 0, like any value unseen in train.
    state = [f.name for f in schema.sparse_features].index("state_prev_res")
    assert (test.sparse_ids[:, state] == 0).sum() > 0


def test_open_bandit_splits_encode(open_bandit_dir: Path) -> None:
    check_every_split_encodes(open_bandit_dir)


# ---------------------------------------------------------------- bad input and the command line


def test_a_missing_source_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"source file not found: .*census-income\.data\.gz"):
        census.build_census(tmp_path)
    with pytest.raises(InputError, match=r"source file not found: .*item_context\.csv"):
        open_bandit.build_open_bandit(tmp_path, "men")


def test_a_csv_with_a_missing_column_names_the_file_and_the_column(data_dir: Path, tmp_path: Path) -> None:
    raw = pl.read_csv(data_dir / hillstrom.FOLDER / hillstrom.FILE, infer_schema=False)
    (tmp_path / "source").mkdir()
    raw.drop("visit").write_csv(tmp_path / "source" / hillstrom.FILE)
    with pytest.raises(InputError, match=rf"table '.*{hillstrom.FILE}' has no column 'visit'"):
        hillstrom.prepare_hillstrom(tmp_path / "out", tmp_path / "source")
    assert not (tmp_path / "out").exists()


def test_bad_values_and_field_counts_are_reported(data_dir: Path, tmp_path: Path) -> None:
    raw = pl.read_csv(data_dir / hillstrom.FOLDER / hillstrom.FILE, infer_schema=False).head(50)
    fourth_is_text = pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("ten")).otherwise("recency")
    raw.with_columns(fourth_is_text.alias("recency")).write_csv(tmp_path / hillstrom.FILE)
    with pytest.raises(InputError, match=r"column 'recency': value 'ten' on data line 4 is not a Int64"):
        hillstrom.build_hillstrom(tmp_path)
    raw.with_columns(pl.lit("Sms").alias("segment")).write_csv(tmp_path / hillstrom.FILE)
    with pytest.raises(InputError, match=r"column 'segment' has unknown arms \['Sms'\]"):
        hillstrom.build_hillstrom(tmp_path)
    (tmp_path / census.TRAIN_FILE).write_text("73, Not in universe, 0\n")
    with pytest.raises(InputError, match=r"census-income\.data\.gz has 3 fields per line, expected 42"):
        census.build_census(tmp_path)


def test_cli_prepares_hillstrom_from_the_default_source(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTR_DATA_DIR", str(data_dir))
    main(["data", "prepare", "hillstrom", "--out", str(tmp_path / "hs"), "--seed", "1"])
    schema = DatasetSchema.load(tmp_path / "hs")
    assert schema.name == "hillstrom" and schema.metadata["seed"] == 1
    assert sum(schema.metadata["rows"].values()) == 64_000
    assert pl.read_parquet(tmp_path / "hs" / "test.parquet").height == 9_600


def test_default_source_is_under_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MTR_DATA_DIR", raising=False)
    assert dataset_source(None, "hillstrom") == Path("../shared/data/hillstrom")
    monkeypatch.setenv("MTR_DATA_DIR", str(tmp_path))
    assert dataset_source(None, "census_income_kdd") == tmp_path / "census_income_kdd"
    assert dataset_source(Path("/elsewhere"), "census_income_kdd") == Path("/elsewhere")


def test_with_split_cuts_each_group_exactly() -> None:
    frame = pl.DataFrame({"group": ["a"] * 20 + ["b"] * 10, "t": list(range(20)) + list(range(10))})
    split = with_split(frame, {"train": 0.7, "validation": 0.1, "test": 0.2}, "t", by="group")
    counts = split.group_by("group", "split").len().sort("group", "split")
    assert counts.rows() == [("a", "test", 4), ("a", "train", 14), ("a", "validation", 2)] + [
        ("b", "test", 2),
        ("b", "train", 7),
        ("b", "validation", 1),
    ]
    assert split.filter(pl.col("group") == "a", pl.col("split") == "test")["t"].to_list() == [16, 17, 18, 19]
    with pytest.raises(InputError, match="sum to 1"):
        with_split(frame, {"train": 0.7, "test": 0.2}, "t")


def test_an_open_bandit_propensity_of_zero_is_refused(data_dir: Path, tmp_path: Path) -> None:
    folder = data_dir / open_bandit.FOLDER / "random" / "all"
    n_items = pl.read_csv(folder / "item_context.csv").height
    log = pl.read_csv(folder / "all.csv.gz", n_rows=20, infer_schema=False)
    zero_first = pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("0.0")).otherwise("propensity_score")
    log.with_columns(zero_first.alias("propensity_score")).write_csv(tmp_path / "all.csv")
    with pytest.raises(InputError, match=r"column 'propensity_score': 1 row\(s\) missing or outside \(0, 1\]"):
        open_bandit._read_log(tmp_path / "all.csv", "random", n_items)


def test_a_cut_copy_of_a_published_file_is_refused(data_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / hillstrom.FOLDER).mkdir(parents=True)
    (root / "SHA256SUMS").write_text((data_dir / "SHA256SUMS").read_text())  # the published checksums
    lines = (data_dir / hillstrom.FOLDER / hillstrom.FILE).read_text().splitlines()
    (root / hillstrom.FOLDER / hillstrom.FILE).write_text("\n".join(lines[:1001]) + "\n")  # 1,000 rows of 64,000
    with pytest.raises(InputError, match=r"is not the published .* \(a cut or edited copy\?\)"):
        hillstrom.prepare_hillstrom(tmp_path / "out", root / hillstrom.FOLDER)
    assert not (tmp_path / "out").exists()


def test_a_source_file_stands_for_its_folder(data_dir: Path) -> None:
    folder = data_dir / hillstrom.FOLDER
    assert dataset_source(folder / hillstrom.FILE, hillstrom.FOLDER) == folder


def test_a_truncated_csv_names_its_empty_field(data_dir: Path, tmp_path: Path) -> None:
    lines = (data_dir / hillstrom.FOLDER / hillstrom.FILE).read_text().splitlines()[:51]
    (tmp_path / hillstrom.FILE).write_text("\n".join([*lines, lines[-1][:20]]) + "\n")  # the last line cut short
    with pytest.raises(InputError, match=r"no value on data line 51 \(a truncated or ragged file\?\)"):
        hillstrom.build_hillstrom(tmp_path)
