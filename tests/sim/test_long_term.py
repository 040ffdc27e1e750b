"""The long-term knob: sends wear users out for months, and the 8-week outcome has a label and a truth that agree."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mtr.cli import main
from mtr.sim.config import WorldConfig
from mtr.sim.outcomes import (
    activity_offsets,
    expected_active_days,
    long_term_window,
    weariness_kernel,
    weariness_offsets,
)
from mtr.sim.writer import simulate_tables

USERS, DAYS, SEED = 500, 100, 2


@pytest.fixture(scope="module")
def worlds() -> dict[float, tuple]:
    """The same users, catalog and logging decisions at long_term_strength 0 and 1 (decisions never see activity)."""
    return {s: simulate_tables(USERS, DAYS, SEED, WorldConfig(long_term_strength=s)) for s in (0.0, 1.0)}


def test_strength_zero_is_todays_world_and_wears_no_one(worlds: dict[float, tuple]) -> None:
    log, _ = worlds[0.0]
    assert not weariness_offsets(log.world, log.history.sent, DAYS + 60).any()
    # Its activity is the 28-day send effects alone, as before the knob.
    horizon = log.truth.offsets.shape[1] - 28
    np.testing.assert_array_equal(log.truth.offsets, activity_offsets(log.truth.activity_effect, horizon))


def test_weariness_costs_active_days_for_the_same_users_and_sends(worlds: dict[float, tuple]) -> None:
    (calm, calm_tables), (worn, worn_tables) = worlds[0.0], worlds[1.0]
    np.testing.assert_array_equal(calm.history.message, worn.history.message)  # the same decisions
    key = ["user_id", "date"]
    calm_days, worn_days = calm_tables["activity"].select(key), worn_tables["activity"].select(key)
    # Common random numbers: a day active in the worn world is active in the calm one, whose rates are higher.
    assert worn_days.join(calm_days, on=key, how="anti").height == 0
    assert worn_days.height < 0.95 * calm_days.height


def one_step_effects(log, first_days: int = 40) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Logged sends of the first days and the truth of sending it against sending nothing instead."""
    truth, history = log.truth, log.history
    user, day = np.nonzero(history.sent[:, :first_days])
    sent = truth.evaluate(user, day, history.message[user, day], history.channel[user, day], history.hour[user, day])
    nothing = np.full(len(user), -1)
    none = truth.evaluate(user, day, nothing, nothing, nothing)
    return user, day, sent.active_days_8w, none.active_days_8w


def test_a_send_gains_active_days_without_weariness_and_loses_them_with_it(worlds: dict[float, tuple]) -> None:
    _, _, calm_send, calm_none = one_step_effects(worlds[0.0][0])
    _, _, worn_send, worn_none = one_step_effects(worlds[1.0][0])
    assert (calm_send - calm_none).mean() > 0  # myopic is right: a send's 28-day effect is all there is
    assert (worn_send - worn_none).mean() < 0 and (worn_send < worn_none).mean() > 0.7


def test_the_oracle_holds_every_other_decision_fixed_and_recomputes_the_8_weeks_exactly(
    worlds: dict[float, tuple],
) -> None:
    log = worlds[1.0][0]
    truth = log.truth
    user, day, _, none = one_step_effects(log)
    horizon = truth.offsets.shape[1] - 28
    for i in np.random.default_rng(0).choice(len(user), size=20, replace=False):
        effect, sent = truth.activity_effect.copy(), truth.sent.copy()
        effect[user[i], day[i]], sent[user[i], day[i]] = 0.0, 0.0  # this send alone taken back
        offsets = activity_offsets(effect, horizon) + weariness_offsets(log.world, sent, horizon)
        window = long_term_window(offsets, user[i : i + 1], day[i : i + 1])
        expected = expected_active_days(truth.activity_base[user[i : i + 1]], window, np.zeros_like(window))
        np.testing.assert_allclose(none[i], expected[0], rtol=1e-10)


def test_the_weariness_kernel_halves_every_three_weeks() -> None:
    world = WorldConfig(long_term_strength=2.0)
    kernel = weariness_kernel(world, np.array([0, 1, 22, 43]))
    assert kernel[0] == 0 and kernel[1] == pytest.approx(-0.08)
    np.testing.assert_allclose(kernel[2:] / kernel[1], [0.5, 0.25])
    assert not weariness_kernel(replace(world, long_term_strength=0.0), np.arange(1, 60)).any()


def test_the_8_week_label_agrees_with_the_truth_on_every_split(tmp_path: Path) -> None:
    events, dataset = tmp_path / "events", tmp_path / "dataset"
    main(["simulate", "--users", "600", "--days", "110", "--seed", "5", "--world.long_term_strength", "1.0"]
         + ["--out", str(events)])  # fmt: skip
    main(["build-dataset", "--events", str(events), "--out", str(dataset), "--objectives", "long_term"]
         + ["--build.embargo_days", "1"])  # fmt: skip
    truth = pl.read_parquet(events / "truth" / "logged_probabilities.parquet")
    activity = pl.read_parquet(events / "activity.parquet").select("user_id", "date")
    for split in ("train", "validation", "test"):
        rows = pl.read_parquet(dataset / f"{split}.parquet")
        assert rows["label_active_days_8w"].null_count() == 0  # matured: every label's 56 days observed
        # The label counts the active days d + 1 .. d + 56 (an independent count from the activity table).
        sample = rows.select("row_id", "user_id", "ts", "label_active_days_8w").head(200)
        counted = (
            sample.with_columns(day=pl.col("ts").dt.date())
            .join(activity, on="user_id")
            .filter((pl.col("date") > pl.col("day")) & (pl.col("date") <= pl.col("day") + pl.duration(days=56)))
            .group_by("row_id")
            .len()
        )
        both = sample.join(counted, on="row_id", how="left").with_columns(pl.col("len").fill_null(0))
        assert (both["label_active_days_8w"] == both["len"]).all(), split
        # ... and its mean is the oracle's expected count, within sampling error.
        # A user's windows overlap from day to day: the error is taken over users, the independent units.
        joined = rows.join(truth, left_on="row_id", right_on="opportunity_id")
        per_user = joined.group_by("user_id").agg((pl.col("label_active_days_8w") - pl.col("p_active_days_8w")).mean())
        gap = per_user["label_active_days_8w"]
        assert abs(gap.mean()) < 3 * gap.std() / np.sqrt(per_user.height), split
