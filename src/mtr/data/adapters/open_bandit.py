"""Open Bandit Dataset, small version (ZOZOTOWN): fashion items shown in 3 slots, logged by two policies.

The uniform-random policy and a Bernoulli Thompson-sampling policy ("bts") each logged 10,000
impressions per campaign. The shown item is the action, the click is the reward, and the logged
`propensity` is what off-policy evaluation needs; `policy` says which logger produced a row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from mtr.data.adapters.output import SPLIT_COLUMN, PreparedData, prepare, with_split
from mtr.data.adapters.source import read_csv_table
from mtr.errors import InputError
from mtr.schema import TaskSpec
from mtr.tables import require_rows

FOLDER = "open_bandit_dataset_small"
POLICIES = ("random", "bts")
Campaign = Literal["all", "men", "women"]
AFFINITY_PREFIX = "user-item_affinity_"
USER_FEATURES = tuple(f"user_feature_{i}" for i in range(4))
TIMESTAMP = pl.Datetime("us", "UTC")
LOG_COLUMNS: dict[str, pl.DataType] = {
    "timestamp": TIMESTAMP,
    "item_id": pl.Int64(),
    "position": pl.Int64(),
    "click": pl.Int64(),
    "propensity_score": pl.Float64(),
    **{name: pl.String() for name in USER_FEATURES},
}
ITEM_COLUMNS: dict[str, pl.DataType] = {
    "item_id": pl.Int64(),
    "item_feature_0": pl.Float64(),
    **{f"item_feature_{i}": pl.String() for i in (1, 2, 3)},
}
SPLIT_FRACTIONS = {"train": 0.70, "validation": 0.15, "test": 0.15}
TASKS = (TaskSpec("click", "engagement", None, "click"),)
SPARSE = ("action", "position", *USER_FEATURES, "item_feature_1", "item_feature_2", "item_feature_3")
DESCRIPTIONS = {
    "action": "the shown item id (as a string)",
    "position": "slot of the impression: 1 left, 2 center, 3 right",
    "item_feature_0": "numeric item attribute",
    "user_item_affinity": "the user's past-click affinity to the shown item",
}


def build_open_bandit(source: Path, campaign: Campaign = "all") -> PreparedData:
    """Read both policies' logs for a campaign and shape them into the training-table contract.

    Args:
        source: the small-dataset folder with `{random,bts}/{campaign}/{campaign}.csv.gz` and `item_context.csv`.
        campaign: "all" (80 items), "men" (34) or "women" (46).
    """
    if campaign not in ("all", "men", "women"):
        raise InputError(f"campaign must be 'all', 'men' or 'women', got {campaign!r}")
    # Each policy folder hashes the categorical item features with its own salt (the item partitions are
    # the same), so one item context, the random policy's, describes the items for both policies.
    item_path = source / POLICIES[0] / campaign / "item_context.csv"
    items = require_rows(str(item_path), read_csv_table(item_path, ITEM_COLUMNS))
    log_paths = tuple(source / policy / campaign / f"{campaign}.csv.gz" for policy in POLICIES)
    logs = [_read_log(path, policy, items.height) for path, policy in zip(log_paths, POLICIES, strict=True)]
    rows = pl.concat(logs).with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("row_id"))
    unmatched = sorted(set(rows["item_id"].unique().to_list()) - set(items["item_id"].to_list()))
    if unmatched:
        raise InputError(f"table '{item_path}' column 'item_id' lacks logged items {unmatched[:10]}")
    rows = with_split(rows.join(items, on="item_id", how="left"), SPLIT_FRACTIONS, "timestamp", by="policy")
    keep = ["row_id", "timestamp", "policy", *SPARSE, "item_feature_0", "user_item_affinity", "item_id"]
    keep += ["propensity", "click", SPLIT_COLUMN]
    return PreparedData(
        name=f"open_bandit_{campaign}",
        rows=rows.select(keep),
        sparse=SPARSE,
        dense={"item_feature_0": "identity", "user_item_affinity": "log1p"},
        tasks=TASKS,
        source_root=source,
        source_files=(*log_paths, item_path),
        descriptions=DESCRIPTIONS,
        action_column="action",
        propensity_column="propensity",
        value_columns=("timestamp", "policy", "item_id"),
        metadata={
            "campaign": campaign,
            "policies": list(POLICIES),
            "n_items": items.height,
            "split": "by time within each policy: first 70% train, next 15% validation, last 15% test",
        },
    )


def _read_log(path: Path, policy: str, n_items: int) -> pl.DataFrame:
    """One policy's log: typed columns, the string action, and the affinity to the shown item, [N] float."""
    affinity_columns = {f"{AFFINITY_PREFIX}{k}": pl.Float64() for k in range(n_items)}
    log = require_rows(str(path), read_csv_table(path, {**LOG_COLUMNS, **affinity_columns}))
    item_id = log["item_id"].to_numpy()
    if item_id.min() < 0 or item_id.max() >= n_items:
        raise InputError(f"table '{path}' column 'item_id' has ids outside 0..{n_items - 1}")
    propensity = log["propensity_score"]
    bad = propensity.is_null() | ~propensity.is_between(0.0, 1.0, closed="right")
    if bad.any():
        raise InputError(
            f"table '{path}' column 'propensity_score': {bad.sum()} row(s) missing or outside (0, 1]"
            " (an importance weight divides by it)"
        )
    affinity = log.select(list(affinity_columns)).to_numpy()[np.arange(log.height), item_id]  # [N]: the shown item's
    return log.select(
        "timestamp",
        pl.lit(policy).alias("policy"),
        pl.col("item_id").cast(pl.String).alias("action"),
        "item_id",
        "position",
        *USER_FEATURES,
        pl.Series("user_item_affinity", affinity),
        pl.col("propensity_score").alias("propensity"),
        pl.col("click").cast(pl.Int8),
    )


def prepare_open_bandit(
    out: Path, source: Path | None = None, campaign: Campaign = "all", overwrite: bool = False
) -> None:
    """Prepare the Open Bandit small data (random and bts policies) as tables and schema.json.

    Args:
        out: output dataset folder.
        source: the small-dataset folder (default: $MTR_DATA_DIR/open_bandit_dataset_small).
        campaign: "all", "men" or "women".
        overwrite: replace `out` even when it is not an earlier `mtr data prepare` output (never the source).
    """
    prepare(out, source, FOLDER, lambda folder: build_open_bandit(folder, campaign), overwrite)
