"""The oracle reproduces the logged truth, evaluates counterfactuals, and labels match the truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.errors import InputError
from mtr.objectives import MESSAGING_OBJECTIVES, objective_names
from mtr.sim.base_rates import task_logit_correlation
from mtr.sim.config import LATENT_ORDER, OBJECTIVES, WorldConfig
from mtr.sim.oracle import Oracle
from mtr.sim.writer import simulate_tables, truth_tables


@pytest.fixture(scope="module")
def oracle(world_dir: Path) -> Oracle:
    return Oracle.load(world_dir)


def test_oracle_reproduces_logged_truth_exactly(oracle: Oracle, world_dir: Path) -> None:
    logged = oracle.probabilities(oracle.logged_actions())
    truth = pl.read_parquet(world_dir / "truth" / "logged_probabilities.parquet")
    assert logged["opportunity_id"].to_list() == truth["opportunity_id"].to_list()
    for task in OBJECTIVES:
        assert logged[f"p_{task}"].equals(truth[f"p_{task}"]), task
    assert logged["eligible"].all()
    none_rows = logged.filter(pl.col("channel") == "none")
    assert none_rows["p_engagement"].null_count() == none_rows.height > 0


def test_truth_and_oracle_columns_follow_the_objective_table(oracle: Oracle, world_dir: Path) -> None:
    # The objectives in table order, then the decision reward of conversion and the 8-week active days (the same
    # window for every action).
    expected = [f"p_{name}" for name in objective_names(MESSAGING_OBJECTIVES)]
    expected += ["p_decision_conversion", "p_active_days_8w"]
    truth = pl.read_parquet(world_dir / "truth" / "logged_probabilities.parquet")
    assert truth.columns == ["opportunity_id", *expected]
    scored = oracle.probabilities(oracle.logged_actions().head(3))
    assert [c for c in scored.columns if c.startswith("p_")] == expected
    # The latent traits are drawn in their own fixed order, but for the same objectives.
    assert sorted(LATENT_ORDER) == sorted(OBJECTIVES)


def test_counterfactual_none_is_organic_conversion(
    oracle: Oracle, world_dir: Path, table: Callable[[str], pl.DataFrame]
) -> None:
    """Day 0, nothing sent before: p = 1 - exp(-r0 * window) with r0 from the user's purchase intent."""
    world = WorldConfig()
    first_day = table("opportunities").filter(pl.col("opportunity_id") <= 1500).sort("opportunity_id")
    result = oracle.probabilities(first_day.with_columns(channel=pl.lit("none"), message_id=None, hour=None))
    traits = table("truth/user_traits").sort("user_id")
    organic = world.organic_conversion_rate * np.exp(0.8 * traits["purchase_intent"].to_numpy())
    # The window closes at the user's first send (on a later day) or after 7 days.
    following = table("opportunities").filter(pl.col("channel") != "none", pl.col("opportunity_id") > 1500)
    first_send = following.group_by("user_id").agg(pl.col("send_ts").min()).sort("user_id")
    days = dict(
        zip(first_send["user_id"], (first_send["send_ts"] - first_day["ts"][0]).dt.total_seconds() / 86400, strict=True)
    )
    window = np.array([min(7.0, days.get(user, 7.0)) for user in first_day["user_id"]])
    np.testing.assert_allclose(result["p_conversion"].to_numpy(), -np.expm1(-organic * window), rtol=1e-12)


def test_counterfactual_actions(oracle: Oracle, world_dir: Path, table: Callable[[str], pl.DataFrame]) -> None:
    candidates = oracle.eligible_actions(pl.Series(range(1, 201)))
    assert candidates.filter(pl.col("channel") == "none").height == 200  # none is always an option
    scored = oracle.probabilities(candidates)
    assert scored["eligible"].all()
    sends = scored.filter(pl.col("channel") != "none")
    assert sends["p_engagement"].is_between(0, 1, closed="none").all()
    # Same user and message: the hour moves engagement (preferred hours differ between users).
    spread = sends.group_by("opportunity_id", "message_id", "channel").agg(pl.col("p_engagement").n_unique())
    assert (spread["p_engagement"] > 1).all()
    web = table("users").filter(pl.col("platform") == "web")["user_id"][0]
    push = pl.DataFrame({"opportunity_id": [web], "message_id": [1], "channel": ["push"], "hour": [8]})
    assert oracle.probabilities(push)["eligible"].to_list() == [False]  # web users have no push
    with pytest.raises(InputError, match="opportunity_id"):
        oracle.probabilities(push.with_columns(opportunity_id=pl.lit(10**9)))
    with pytest.raises(InputError, match="'hour'"):
        oracle.probabilities(push.with_columns(hour=pl.lit(3)))


def _z(labels: pl.Series, truth: pl.Series) -> float:
    """(observed - expected) / standard error for independent Bernoulli labels with known p."""
    p = truth.to_numpy()
    return float((labels.to_numpy().sum() - p.sum()) / math.sqrt((p * (1 - p)).sum()))


def test_empirical_labels_match_truth(labels: pl.DataFrame) -> None:
    sends = labels.filter("is_send")
    high = sends.filter(pl.col("p_engagement") > pl.col("p_engagement").median())
    for frame, task in ((sends, "engagement"), (high, "engagement"), (sends, "unsubscribe"), (sends, "conversion")):
        z = _z(frame[f"label_{task}"], frame[f"p_{task}"])
        assert abs(z) < 4, (task, z)
    # Windows of one user's rows overlap (no-send conversion, retention): take one day, one row per user.
    # On day 7 no-send rows also carry the lift of earlier sends.
    for offset in (0, 7):
        one_day = labels.filter(pl.col("day") == pl.col("day").min() + pl.duration(days=offset))
        for task in ("conversion", "retention"):
            z = _z(one_day[f"label_{task}"], one_day[f"p_{task}"])
            assert abs(z) < 4, (offset, task, z)


def test_task_correlation_moves_the_correlation_of_true_logits() -> None:
    strengths = []
    for rho in (0.0, 1.0):
        log, tables = simulate_tables(800, 7, 11, WorldConfig(task_correlation=rho))
        correlation = task_logit_correlation(truth_tables(log, tables["opportunities"])["logged_probabilities"])
        strengths.append(np.abs(correlation[~np.eye(4, dtype=bool)]).mean())
    assert strengths[0] < 0.2
    assert strengths[1] > strengths[0] + 0.3
