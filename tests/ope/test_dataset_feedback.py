"""Logged rewards from a dataset's label and mask columns: what counts as observed."""

from __future__ import annotations

import numpy as np
import polars as pl

from mtr.ope.dataset_feedback import logged_rewards
from mtr.schema import OBJECTIVES, DatasetSchema, FeatureSpec, messaging_tasks


def test_a_missing_label_is_unobserved_and_never_a_nan_reward() -> None:
    schema = DatasetSchema("toy", (FeatureSpec("x", "dense", "Float64"),), messaging_tasks())
    frame = {"channel": ["push", "push", "email", "none"]}
    for task in schema.tasks:
        frame[task.mask_column] = [int(task.channel == c) for c in frame["channel"]]
    for objective in OBJECTIVES:
        frame[f"label_{objective}"] = [1, None, 0, 1]
    frame["label_conversion"] = [1.0, float("nan"), 0.0, None]  # NaN and null: both missing
    rewards, mask = logged_rewards(pl.DataFrame(frame), schema)
    assert np.isfinite(rewards).all()
    conversion, engagement = OBJECTIVES.index("conversion"), OBJECTIVES.index("engagement")
    # Row 1 is masked in (a push) but unlabelled: unobserved, reward 0. Row 3 ("none") has no conversion label.
    assert mask[:, conversion].tolist() == [True, False, True, False]
    assert rewards[:, conversion].tolist() == [1.0, 0.0, 0.0, 0.0]
    # Engagement does not exist for "none": a known 0, observed.
    assert mask[:, engagement].tolist() == [True, False, True, True] and rewards[3, engagement] == 0.0
