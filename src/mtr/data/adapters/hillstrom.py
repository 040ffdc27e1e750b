"""Hillstrom MineThatData e-mail challenge (2008): a randomised 3-arm e-mail experiment, 64,000 customers.

Each customer was assigned at random to a men's e-mail, a women's e-mail or no e-mail (propensity 1/3).
The arm is the action; visit and conversion in the two weeks after are the outcomes, labelled as
e-mail tasks on the e-mail arms and as organic ("none") tasks on the no-e-mail arm.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mtr.data.adapters.output import SPLIT_COLUMN, PreparedData, prepare, random_order, with_split
from mtr.data.adapters.source import read_csv_table
from mtr.errors import InputError
from mtr.schema import NO_SEND, TaskSpec

FOLDER = "hillstrom"
FILE = "Kevin_Hillstrom_MineThatData_E-MailAnalytics_DataMiningChallenge_2008.03.20.csv"
COLUMNS: dict[str, pl.DataType] = {
    "recency": pl.Int64(),
    "history_segment": pl.String(),
    "history": pl.Float64(),
    "mens": pl.Int64(),
    "womens": pl.Int64(),
    "zip_code": pl.String(),
    "newbie": pl.Int64(),
    "channel": pl.String(),
    "segment": pl.String(),
    "visit": pl.Int64(),
    "conversion": pl.Int64(),
    "spend": pl.Float64(),
}
SEGMENT_ACTIONS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": NO_SEND}
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
EMAIL = "email"
TASKS = (
    TaskSpec("engagement_email", "engagement", EMAIL, "label_engagement", "mask_email"),
    TaskSpec("conversion_email", "conversion", EMAIL, "label_conversion", "mask_email"),
    TaskSpec("engagement_none", "engagement", NO_SEND, "label_engagement", "mask_none"),
    TaskSpec("conversion_none", "conversion", NO_SEND, "label_conversion", "mask_none"),
)
DESCRIPTIONS = {
    "action": "the randomised arm: mens_email, womens_email or none",
    "history_segment": "bucket of dollars spent in the past year",
    "mens": "1 = bought men's merchandise in the past year",
    "womens": "1 = bought women's merchandise in the past year",
    "zip_code": "Urban / Surburban / Rural",
    "newbie": "1 = new customer in the past 12 months",
    "purchase_channel": "channels used to buy in the past year (the CSV's `channel`)",
    "recency": "months since last purchase",
    "history": "dollars spent in the past year",
}


def build_hillstrom(source: Path, seed: int = 0) -> PreparedData:
    """Read the Hillstrom CSV and shape it into the training-table contract.

    Args:
        source: folder holding the challenge CSV.
        seed: seed of the random 70/15/15 split, stratified by arm.
    """
    path = source / FILE
    raw = read_csv_table(path, COLUMNS)
    unknown = sorted(set(raw["segment"].unique().to_list()) - set(SEGMENT_ACTIONS))
    if unknown:
        expected = list(SEGMENT_ACTIONS)
        raise InputError(f"table '{path}' column 'segment' has unknown arms {unknown}; expected {expected}")
    action = pl.col("segment").replace_strict(SEGMENT_ACTIONS)
    sent = action != NO_SEND
    rows = raw.rename({"channel": "purchase_channel"}).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row_id"),
        action.alias("action"),
        pl.when(sent).then(pl.lit(EMAIL)).otherwise(pl.lit(NO_SEND)).alias("channel"),
        pl.lit(1 / 3).alias("propensity"),
        pl.col("visit").cast(pl.Int8).alias("label_engagement"),
        pl.col("conversion").cast(pl.Int8).alias("label_conversion"),
        sent.cast(pl.Int8).alias("mask_email"),
        (~sent).cast(pl.Int8).alias("mask_none"),
    )
    rows = with_split(rows, SPLIT_FRACTIONS, random_order(rows.height, seed), by="segment")
    sparse = ("action", "history_segment", "mens", "womens", "zip_code", "newbie", "purchase_channel")
    keep = ["row_id", *sparse, "recency", "history", "channel", "propensity", "spend"]
    keep += ["label_engagement", "label_conversion", "mask_email", "mask_none", SPLIT_COLUMN]
    return PreparedData(
        name="hillstrom",
        rows=rows.select(keep),
        sparse=sparse,
        dense={"recency": "identity", "history": "log1p"},
        tasks=TASKS,
        source_root=source,
        source_files=(path,),
        descriptions=DESCRIPTIONS,
        action_column="action",
        channel_column="channel",
        propensity_column="propensity",
        value_columns=("spend",),
        metadata={"seed": seed, "split": "random 70/15/15 stratified by arm", "arms": SEGMENT_ACTIONS},
    )


def prepare_hillstrom(out: Path, source: Path | None = None, seed: int = 0, overwrite: bool = False) -> None:
    """Prepare the Hillstrom e-mail experiment as train/validation/test tables and schema.json.

    Args:
        out: output dataset folder.
        source: folder holding the challenge CSV (default: $MTR_DATA_DIR/hillstrom).
        seed: seed of the random 70/15/15 split, stratified by arm.
        overwrite: replace `out` even when it is not an earlier `mtr data prepare` output (never the source).
    """
    prepare(out, source, FOLDER, lambda folder: build_hillstrom(folder, seed), overwrite)
