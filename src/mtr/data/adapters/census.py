"""UCI Census-Income (KDD) under the MMoE protocol (Ma et al., KDD 2018, task group 1).

Two tasks on the same people: income above $50K and marital status "Never married". The official train
file is the train split; the official test file is cut 1:1 at random into validation and test, as in
MMoE and its reimplementations. Education and marital status are not inputs (marital status is a label,
education is the label of task group 2); `instance_weight` is a sampling weight, never a feature.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from mtr.data.adapters.output import (
    SPLIT_COLUMN,
    PreparedData,
    Transform,
    prepare,
    random_order,
    with_split,
)
from mtr.data.adapters.source import read_csv_table
from mtr.schema import TaskSpec

FOLDER = "census_income_kdd"
TRAIN_FILE = "census-income.data.gz"
TEST_FILE = "census-income.test.gz"
# The 42 fields in file order; integer-coded fields are read as Int64 (the raw value), the rest as text.
INTEGER_COLUMNS = (
    "age",
    "det_ind_code",
    "det_occ_code",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "stock_dividends",
    "num_emp",
    "own_or_self",
    "vet_benefits",
    "weeks_worked",
    "year",
)
FIELDS = (
    "age, class_worker, det_ind_code, det_occ_code, education, wage_per_hour, hs_college, marital_stat, "
    "major_ind_code, major_occ_code, race, hisp_origin, sex, union_member, unemp_reason, full_or_part_emp, "
    "capital_gains, capital_losses, stock_dividends, tax_filer_stat, region_prev_res, state_prev_res, "
    "det_hh_fam_stat, det_hh_summ, instance_weight, mig_chg_msa, mig_chg_reg, mig_move_reg, mig_same, "
    "mig_prev_sunbelt, num_emp, fam_under_18, country_father, country_mother, country_self, citizenship, "
    "own_or_self, vet_question, vet_benefits, weeks_worked, year, income_50k"
).split(", ")
COLUMNS: dict[str, pl.DataType] = {
    name: pl.Int64() if name in INTEGER_COLUMNS else pl.Float64() if name == "instance_weight" else pl.String()
    for name in FIELDS
}
# Continuous inputs; money amounts are mostly 0 with a long tail, so they are log-compressed.
DENSE: dict[str, Transform] = {
    "age": "identity",
    "wage_per_hour": "log1p",
    "capital_gains": "log1p",
    "capital_losses": "log1p",
    "stock_dividends": "log1p",
    "num_emp": "identity",
    "weeks_worked": "identity",
}
NOT_INPUTS = ("education", "marital_stat", "instance_weight", "income_50k")
SPARSE = tuple(name for name in FIELDS if name not in DENSE and name not in NOT_INPUTS)
TASKS = (
    TaskSpec("income", "income", None, "label_income"),
    TaskSpec("marital", "marital", None, "label_marital"),
)
HELD_OUT_FRACTIONS = {"validation": 0.5, "test": 0.5}


def build_census(source: Path, seed: int = 0) -> PreparedData:
    """Read both census files and shape them into the training-table contract.

    Args:
        source: folder holding census-income.data.gz and census-income.test.gz.
        seed: seed of the random 1:1 cut of the test file into validation and test.
    """
    paths = (source / TRAIN_FILE, source / TEST_FILE)
    train, held_out = (read_csv_table(path, COLUMNS, has_header=False, missing="?") for path in paths)
    held_out = with_split(held_out, HELD_OUT_FRACTIONS, random_order(held_out.height, seed))
    rows = pl.concat([train.with_columns(pl.lit("train").alias(SPLIT_COLUMN)), held_out]).with_columns(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row_id"),
        (pl.col("income_50k") == "50000+.").cast(pl.Int8).alias("label_income"),
        (pl.col("marital_stat") == "Never married").cast(pl.Int8).alias("label_marital"),
    )
    keep = ["row_id", *SPARSE, *DENSE, "education", "instance_weight", "label_income", "label_marital", SPLIT_COLUMN]
    return PreparedData(
        name="census",
        rows=rows.select(keep),
        sparse=SPARSE,
        dense=DENSE,
        tasks=TASKS,
        source_root=source,
        source_files=paths,
        value_columns=("education", "instance_weight"),
        metadata={
            "seed": seed,
            "split": "train file = train; test file cut 1:1 at random into validation and test (MMoE protocol)",
            "protocol": "MMoE task group 1: income > 50K and marital status 'Never married'",
        },
    )


def prepare_census(out: Path, source: Path | None = None, seed: int = 0, overwrite: bool = False) -> None:
    """Prepare Census-Income (KDD) for the MMoE income / never-married tasks as tables and schema.json.

    Args:
        out: output dataset folder.
        source: folder holding census-income.data.gz and census-income.test.gz
            (default: $MTR_DATA_DIR/census_income_kdd).
        seed: seed of the random 1:1 cut of the test file into validation and test.
        overwrite: replace `out` even when it is not an earlier `mtr data prepare` output (never the source).
    """
    prepare(out, source, FOLDER, lambda folder: build_census(folder, seed), overwrite)
