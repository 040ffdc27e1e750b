"""Summary figures of a simulated log: base rates and the correlation of the tasks' true logits."""

from __future__ import annotations

import numpy as np
import polars as pl

from mtr.sim.config import TASKS


def task_logit_correlation(truth: pl.DataFrame) -> np.ndarray:
    """[4, 4] Pearson correlation of logit(p) across logged sends, tasks in `TASKS` order.

    Args:
        truth: `truth/logged_probabilities` rows (p_engagement, p_conversion, p_retention, p_unsubscribe).
    """
    sends = truth.filter(pl.col("p_engagement").is_not_null())
    if sends.height < 3:
        return np.full((4, 4), np.nan)
    p = np.clip(np.stack([sends[f"p_{task}"].to_numpy() for task in TASKS], 1), 1e-12, 1 - 1e-12)
    return np.corrcoef(np.log(p / (1 - p)), rowvar=False)


def summary(tables: dict[str, pl.DataFrame], truth: pl.DataFrame) -> dict[str, float | int]:
    """Row counts and base rates: per-send engagement/unsubscribe, per-row conversion/retention truth."""
    opportunities = tables["opportunities"]
    sends = opportunities.filter(pl.col("channel") != "none")
    figures: dict[str, float | int] = {f"rows_{name}": frame.height for name, frame in tables.items()}
    figures["send_share"] = sends.height / max(opportunities.height, 1)
    engaged = tables["engagements"].filter(pl.col("kind") == "open")["opportunity_id"].n_unique()
    figures["engagement_per_send"] = engaged / max(sends.height, 1)
    figures["unsubscribe_per_send"] = tables["unsubscribes"].height / max(sends.height, 1)
    for task in TASKS:
        figures[f"mean_true_{task}"] = float(truth[f"p_{task}"].mean() or 0.0)
    for channel, rate in (
        sends.join(truth, on="opportunity_id")
        .group_by("channel")
        .agg(pl.col("p_engagement").mean())
        .sort("channel")
        .rows()
    ):
        figures[f"mean_true_engagement_{channel}"] = float(rate)
    correlation = task_logit_correlation(truth)
    off_diagonal = correlation[~np.eye(4, dtype=bool)]
    figures["mean_abs_task_logit_correlation"] = float(np.abs(off_diagonal).mean())
    return figures
