import json

import polars as pl
import pytest
import torch

from mtr.data.datamodule import MessagingDataModule
from mtr.errors import InputError


def test_batches_carry_every_split_row_once_with_schema_shapes(toy_dataset):
    data = MessagingDataModule(str(toy_dataset), batch_size=256, eval_batch_size=500)
    data.setup("fit")
    seen = torch.cat([batch.row_id for batch in data.train_dataloader()])
    train = pl.read_parquet(toy_dataset / "train.parquet")
    assert sorted(seen.tolist()) == train["row_id"].to_list()
    batch = next(iter(data.val_dataloader()))
    assert batch.sparse.keys() == ["country", "plan", "channel", "hour"]
    assert batch.sparse.values().shape == (4 * len(batch),)
    assert batch.dense.shape == (len(batch), 2) and batch.labels.shape == (len(batch), 14)
    assert torch.all(batch.labels <= batch.masks)  # a masked task never carries a positive label


def test_batch_rows_match_the_table(toy_dataset):
    data = MessagingDataModule(str(toy_dataset), eval_batch_size=64)
    data.setup("test")
    batch = next(iter(data.test_dataloader()))
    table = pl.read_parquet(toy_dataset / "test.parquet").head(64)
    channel_spec = data.schema.sparse_features[2]
    channel_ids = batch.sparse["channel"].values()
    decoded = [channel_spec.vocabulary[i - 1] for i in channel_ids.tolist()]
    assert decoded == table["channel"].to_list()
    assert torch.allclose(batch.propensity, torch.tensor(table["propensity"].to_numpy(), dtype=torch.float32))
    conversion_push = data.schema.task_names.index("conversion_push")
    expected = (table["label_conversion"] * table["mask_conversion_push"]).to_list()
    assert batch.labels[:, conversion_push].tolist() == expected


def test_missing_split_and_column_are_named(toy_dataset, tmp_path):
    (tmp_path / "schema.json").write_text((toy_dataset / "schema.json").read_text())
    pl.read_parquet(toy_dataset / "train.parquet").drop("plan").write_parquet(tmp_path / "train.parquet")
    with pytest.raises(InputError, match="table 'train' has no column 'plan'"):
        MessagingDataModule(str(tmp_path))  # from the files' footers, before a trainer makes any folder
    pl.read_parquet(toy_dataset / "train.parquet").write_parquet(tmp_path / "train.parquet")
    with pytest.raises(InputError, match="table 'validation' not found"):
        MessagingDataModule(str(tmp_path)).split("validation")


def test_an_edited_schema_is_named_before_training(toy_dataset, tmp_path):
    """A schema.json edited by hand fails naming what is wrong, instead of training on it without a word."""
    raw = json.loads((toy_dataset / "schema.json").read_text())
    for name in ("train.parquet", "validation.parquet"):
        (tmp_path / name).write_bytes((toy_dataset / name).read_bytes())
    edits = [
        (lambda r: r | {"channel_column": "chanel"}, "has no column 'chanel' \\(the schema's channel_column\\)"),
        (lambda r: r | {"tasks": [r["tasks"][0] | {"channel": "sms"}, *r["tasks"][1:]]}, "unknown channel 'sms'"),
    ]
    retyped = [raw["features"][0] | {"dtype": "Float32"}, *raw["features"][1:]]
    edits.append((lambda r: r | {"features": retyped}, "but the schema's feature says Float32"))
    misspelt = [raw["tasks"][0] | {"objective": "conversoin"}, *raw["tasks"][1:]]
    declared = [{"name": "conversion", "exists_for_none": True}]  # a schema that carries its objective table
    edits.append((lambda r: r | {"tasks": misspelt, "objectives": declared}, "\\['conversoin'\\] are not in"))
    for edit, message in edits:
        (tmp_path / "schema.json").write_text(json.dumps(edit(raw)))
        with pytest.raises(InputError, match=message):
            MessagingDataModule(str(tmp_path)).split("train")  # the data module or its first split says it
