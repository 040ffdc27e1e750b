"""Point-in-time features: exact values on the hand-made log, and no leakage from events at or after ts."""

from __future__ import annotations

import polars as pl
import pytest
from handmade_log import CONVERSION_SCHEMA, ENGAGEMENT_SCHEMA, UNSUBSCRIBE_SCHEMA, at, events, handmade_tables

from mtr.data.feature_config import SIMULATOR_FEATURES

SPARSE_FEATURES, DENSE_FEATURES = SIMULATOR_FEATURES.sparse, tuple(SIMULATOR_FEATURES.dense)

FEATURES = [*SPARSE_FEATURES, *DENSE_FEATURES]


def test_history_features_of_handmade_rows(build) -> None:
    rows, _ = build()
    by_id = {row["row_id"]: row for row in rows.iter_rows(named=True)}
    # Opp 2, decided day 2 06:00: opp 1's push (day 0 09:00) and its open (day 0 10:00) are 44 h old.
    assert by_id[2]["sends_push_7d"] == 1 and by_id[2]["engagements_push_7d"] == 1
    assert by_id[2]["days_since_engagement"] == pytest.approx(44 / 24)
    assert by_id[2]["active_days_7d"] == 1  # day 1; the decision day itself is not counted
    # Opp 4 (day 5 06:00): the day-3 conversion counts, the one at day 5 10:00 is in the future.
    assert by_id[4]["conversions_28d"] == 1
    assert (by_id[4]["sends_push_7d"], by_id[4]["sends_email_7d"]) == (1, 1)
    # Opp 9 (day 10 06:00): opp 1's push (day 0) left the 7-day window, opp 4's (day 5) is in it.
    assert (by_id[9]["sends_push_7d"], by_id[9]["sends_push_28d"]) == (1, 2)
    assert (by_id[9]["active_days_7d"], by_id[9]["active_days_28d"]) == (1, 2)
    # Opp 4 was decided before the day-5 push unsubscribe, opp 9 after it.
    assert (by_id[4]["subscribed_push"], by_id[9]["subscribed_push"], by_id[9]["subscribed_email"]) == (
        True,
        False,
        True,
    )
    # No engagement before: capped at 60 days.
    assert by_id[5]["days_since_engagement"] == 60.0
    assert by_id[1]["tenure_days"] == pytest.approx(100.25)
    assert (by_id[1]["day_of_week"], by_id[6]["day_of_week"]) == (1, 7)  # 2024-01-01 Monday, 01-21 Sunday
    # A no-send has no message: its message features are null and encode to the unknown id.
    assert (by_id[3]["channel"], by_id[3]["message_id"], by_id[3]["message_type"], by_id[3]["hour"]) == (
        "none",
        None,
        None,
        None,
    )
    assert (by_id[2]["action"], by_id[3]["action"]) == ("11:email:9", "none")


def test_events_at_or_after_ts_leave_that_opportunitys_features_unchanged(build) -> None:
    base, _ = build()
    tables = handmade_tables()
    ts = at(2, 6)  # opp 2's decision time
    late = {
        "conversions": events(CONVERSION_SCHEMA, (1, ts, 50.0), (1, at(3), 1.0)),
        "engagements": events(ENGAGEMENT_SCHEMA, (2, 1, "email", at(2, 9), "click")),
        "unsubscribes": events(UNSUBSCRIBE_SCHEMA, (1, "email", ts)),
    }
    changed = {name: pl.concat([tables[name], extra]) for name, extra in late.items()}
    after, _ = build({**tables, **changed})
    opp2_before = base.filter(pl.col("row_id") == 2).select(FEATURES)
    opp2_after = after.filter(pl.col("row_id") == 2).select(FEATURES)
    assert opp2_after.equals(opp2_before)
    # The next opportunity (opp 3, day 4) sees all of them.
    opp3_before = base.filter(pl.col("row_id") == 3).row(0, named=True)
    opp3_after = after.filter(pl.col("row_id") == 3).row(0, named=True)
    assert opp3_after["conversions_28d"] == opp3_before["conversions_28d"] + 2
    assert opp3_after["engagements_email_7d"] == opp3_before["engagements_email_7d"] + 1
    assert (opp3_before["subscribed_email"], opp3_after["subscribed_email"]) == (True, False)
    assert opp3_after["days_since_engagement"] == pytest.approx((at(4, 6) - at(2, 9)).total_seconds() / 86_400)


def test_a_send_scheduled_after_a_later_decision_is_not_history_for_it(build) -> None:
    tables = handmade_tables()
    # Opp 3's decision now comes on day 2 at 08:00, after opp 2's decision (06:00) but before its email goes out
    # that day (09:00; a send happens on its decision's day).
    opportunities = tables["opportunities"].with_columns(
        ts=pl.when(pl.col("opportunity_id") == 3).then(pl.lit(at(2, 8))).otherwise("ts")
    )
    rows, _ = build({**tables, "opportunities": opportunities})
    by_id = {row["row_id"]: row for row in rows.iter_rows(named=True)}
    assert by_id[3]["sends_email_7d"] == 0
    assert by_id[4]["sends_email_7d"] == 1
