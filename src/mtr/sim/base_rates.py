"""Summary figures of a simulated log: base rates and the correlation of the tasks' true logits."""

from __future__ import annotations

import numpy as np
import polars as pl

from mtr.sim.config import OBJECTIVES


def task_logit_correlation(truth: pl.DataFrame) -> np.ndarray:
    """[4, 4] Pearson correlation of logit(p) across logged sends, objectives in `OBJECTIVES` (table) order.

    Args:
        truth: `truth/logged_probabilities` rows (p_conversion, p_engagement, p_retention, p_unsubscribe).
    """
    sends = truth.filter(pl.col("p_engagement").is_not_null())
    if sends.height < 3:
        return np.full((4, 4), np.nan)
    p = np.clip(np.stack([sends[f"p_{task}"].to_numpy() for task in OBJECTIVES], 1), 1e-12, 1 - 1e-12)
    return np.corrcoef(np.log(p / (1 - p)), rowvar=False)


def summary(tables: dict[str, pl.DataFrame], truth: pl.DataFrame) -> dict[str, float | int]:
    """Row counts and base rates: per-send engagement/unsubscribe, per-row conversion/retention truth.

    Means are taken with numpy in row order (polars' parallel aggregations may differ in the last bit),
    so that meta.json is byte-identical for the same seed.
    """
    opportunities = tables["opportunities"]
    channel = opportunities["channel"].to_numpy()
    n_sends = max(int((channel != "none").sum()), 1)
    figures: dict[str, float | int] = {f"rows_{name}": frame.height for name, frame in tables.items()}
    figures["send_share"] = n_sends / max(opportunities.height, 1)
    engaged = tables["engagements"].filter(pl.col("kind") == "open")["opportunity_id"].n_unique()
    figures["engagement_per_send"] = engaged / n_sends
    figures["unsubscribe_per_send"] = tables["unsubscribes"].height / n_sends
    for task in OBJECTIVES:
        figures[f"mean_true_{task}"] = float(np.nanmean(truth[f"p_{task}"].to_numpy().astype(float)))
    engagement = truth["p_engagement"].to_numpy().astype(float)  # rows in opportunity order, like `channel`
    for name in np.unique(channel[channel != "none"]):
        figures[f"mean_true_engagement_{name}"] = float(engagement[channel == name].mean())
    correlation = task_logit_correlation(truth)
    figures["mean_abs_task_logit_correlation"] = float(np.abs(correlation[~np.eye(4, dtype=bool)]).mean())
    return {name: round(value, 6) if isinstance(value, float) else value for name, value in figures.items()}
