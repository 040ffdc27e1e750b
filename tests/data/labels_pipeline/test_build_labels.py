"""Label rules on the hand-made log: exact labels, attribution, masks and maturity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import polars as pl
import pytest
from handmade_log import CONVERSION_SCHEMA, LOG_END, UNSUBSCRIBE_SCHEMA, at, events, handmade_tables, truncate

from mtr.data.labels import mask_columns
from mtr.errors import InputError
from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.schema import DatasetSchema, messaging_tasks

# row_id -> (conversion, engagement, retention, unsubscribe); None = not applicable or not matured.
EXPECTED_LABELS = {
    1: (0, 1, 1, 0),  # engaged after 1 h; its conversion window closed at opp 2's send
    2: (1, 0, 1, 0),  # the day-3 conversion is opp 2's (the later send), not opp 1's
    3: (0, None, 0, None),  # no-send: window ends at opp 4's send, before the day-5 conversion
    4: (1, 0, 0, 1),  # converted 1 h after the send; push unsubscribe 11 h after it
    5: (1, None, 1, None),  # no-send with no later send: 7-day window holds the day-12 conversion
    6: (0, 0, None, 0),  # engagement at 49 h is too late; retention day 48 is after log_end (45)
    7: (0, 0, None, 0),  # conversion window closed by opp 8's send on day 44, inside the log
    8: (None, None, None, None),  # send at day 44 23:00: no window has ended by day 45
    9: (0, None, 0, None),
}
OBJECTIVES = ("conversion", "engagement", "retention", "unsubscribe")


@pytest.mark.parametrize("partitions", [1, 2])
def test_handmade_rows_get_exactly_the_labels_worked_out_by_hand(build, partitions: int) -> None:
    rows, _ = build(partitions=partitions)
    labels = rows.select("row_id", *(f"label_{o}" for o in OBJECTIVES))
    assert {row[0]: row[1:] for row in labels.iter_rows()} == EXPECTED_LABELS
    assert dict(rows.select("row_id", "conversion_value").iter_rows()) == {
        1: 0.0,
        2: 20.0,
        3: 0.0,
        4: 5.0,
        5: 7.0,
        6: 0.0,
        7: 0.0,
        8: None,
        9: 0.0,
    }


def test_masks_are_one_only_on_the_rows_own_channel_with_a_matured_label(build) -> None:
    rows, _ = build()
    channels = dict(rows.select("row_id", "channel").iter_rows())
    masks = {row["row_id"]: row for row in rows.iter_rows(named=True)}
    for task in messaging_tasks():
        for row_id, (conversion, engagement, retention, unsubscribe) in EXPECTED_LABELS.items():
            label = {"conversion": conversion, "engagement": engagement, "retention": retention}.get(
                task.objective, unsubscribe
            )
            expected = int(channels[row_id] == task.channel and label is not None)
            assert masks[row_id][task.mask_column] == expected, (task.name, row_id)


def test_a_conversion_between_two_sends_goes_to_the_later_send(build) -> None:
    tables = handmade_tables()
    # One conversion 1 h after opp 2's email send (day 2 09:00), inside opp 1's 7 days too.
    tables["conversions"] = pl.concat(
        [tables["conversions"].filter(pl.col("user_id") == 2), events(CONVERSION_SCHEMA, (1, at(2, 10), 3.0))]
    )
    rows, _ = build(tables)
    conversion = dict(rows.select("row_id", "label_conversion").iter_rows())
    assert (conversion[1], conversion[2], conversion[3], conversion[4]) == (0, 1, 0, 0)


def test_a_no_send_window_ends_at_the_next_send(build) -> None:
    tables = handmade_tables()
    # Opp 3 (no-send, day 4 06:00) is followed by opp 4's send at day 5 09:00.
    before, after = at(5, 8), at(5, 9)
    for moment, expected in ((before, (1, 0)), (after, (0, 1))):
        rows, _ = build({**tables, "conversions": events(CONVERSION_SCHEMA, (1, moment, 1.0))})
        conversion = dict(rows.select("row_id", "label_conversion").iter_rows())
        assert (conversion[3], conversion[4]) == expected


def test_an_unsubscribe_goes_to_the_latest_send_on_its_channel(build) -> None:
    tables = handmade_tables()
    # An email unsubscribe on day 5 at 20:00: the latest email send is opp 2 (day 2), 3 days before: too old.
    rows, _ = build({**tables, "unsubscribes": events(UNSUBSCRIBE_SCHEMA, (1, "email", at(5, 20)))})
    unsubscribe = dict(rows.select("row_id", "label_unsubscribe").iter_rows())
    assert (unsubscribe[2], unsubscribe[4]) == (0, 0)
    # The same unsubscribe on day 3 at 20:00, 35 h after opp 2's email send.
    rows, _ = build({**tables, "unsubscribes": events(UNSUBSCRIBE_SCHEMA, (1, "email", at(3, 20)))})
    unsubscribe = dict(rows.select("row_id", "label_unsubscribe").iter_rows())
    assert (unsubscribe[2], unsubscribe[4]) == (1, 0)


def test_truncating_the_log_drops_masks_and_never_turns_an_immature_label_into_zero(build) -> None:
    full, _ = build()
    end = at(12)
    # Five opportunity days are left: 3 train, 1 validation, 1 test.
    short, _ = build(truncate(handmade_tables(), end), end=end, train_fraction=0.6)
    assert short["row_id"].to_list() == [1, 2, 3, 4, 5, 9]
    joined = short.join(full, on="row_id", suffix="_full")
    for task in messaging_tasks():
        labelled = joined.filter(pl.col(task.mask_column) == 1)
        # A label that is observed in the short log is the label of the full log.
        assert labelled[task.label_column].to_list() == labelled[f"{task.label_column}_full"].to_list(), task.name
        assert (joined[task.mask_column] <= joined[f"{task.mask_column}_full"]).all(), task.name
    # No retention matures before day 29; opp 4's and opps 5 and 9's 7-day windows are still open, while
    # opp 3's window closed at opp 4's send.
    assert short.select(pl.sum_horizontal(mask_columns(messaging_tasks()))).to_series().to_list() == [3, 3, 1, 2, 0, 0]
    assert short.filter(pl.col("row_id").is_in([4, 5, 9]))["label_conversion"].to_list() == [None, None, None]
    assert short.filter(pl.col("row_id") == 1)["label_retention"].item() is None


@pytest.mark.parametrize("hours_before_end", [0, 1])
def test_engagement_matures_exactly_when_48_hours_after_the_send_are_observed(build, hours_before_end: int) -> None:
    # Opp 7 is sent on day 40 at 09:00; its 48 h end on day 42 at 09:00.
    end = at(42, 9) - timedelta(hours=hours_before_end)
    rows, _ = build(truncate(handmade_tables(), end), end=end)
    opp7 = rows.filter(pl.col("row_id") == 7)
    assert opp7["mask_engagement_email"].item() == (1 if hours_before_end == 0 else 0)
    assert opp7["label_engagement"].item() == (0 if hours_before_end == 0 else None)


def test_a_continuous_objective_gets_the_summed_value_of_its_window_and_the_others_do_not_change(
    build: Callable[..., tuple[pl.DataFrame, DatasetSchema]],
) -> None:
    spend = Objective("spend", kind="continuous", exists_for_none=True, label_rule="conversion_value")
    rows, schema = build(objectives=(*MESSAGING_OBJECTIVES, spend))
    # Opp 2's window holds the 20.0 of day 3; opp 8's window has not ended.
    values = dict(rows.select("row_id", "label_spend").iter_rows())
    assert values == {1: 0.0, 2: 20.0, 3: 0.0, 4: 5.0, 5: 7.0, 6: 0.0, 7: 0.0, 8: None, 9: 0.0}
    assert rows.schema["label_spend"] == pl.Float64
    masks = dict(rows.select("row_id", "mask_spend_none").iter_rows())
    assert [row for row, mask in masks.items() if mask] == [3, 5, 9]  # the matured no-sends
    assert schema.metadata["rates"]["train"]["spend_none"]["mean"] == pytest.approx(7.0 / 3)
    messaging, _ = build()
    assert rows.select(messaging.columns).equals(messaging)


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        (Objective("spend", kind="continuous", label_rule="spend"), "unknown label_rule 'spend'"),
        (Objective("spend", label_rule="conversion_value"), "'spend' is binary but its label_rule"),
        (Objective("converted_value", kind="continuous", label_rule="conversion"), "gives binary labels"),
    ],
)
def test_an_objective_without_a_fitting_label_rule_is_named(
    build: Callable[..., tuple[pl.DataFrame, DatasetSchema]], objective: Objective, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        build(objectives=(*MESSAGING_OBJECTIVES, objective))


def test_a_conversion_window_no_logged_decision_could_cut_is_censored_never_lengthened(build) -> None:
    """The log goes on 30 days after its last decision (a quiet follow-up): a window that no logged send cut and
    whose 7 days pass the last decision day is censored (null, masked), since a decision the log does not hold
    could have cut it; a window a logged send cut keeps its label."""
    rows, schema = build(end=LOG_END + timedelta(days=30))
    decisions_end = pl.Series([schema.metadata["decisions_end"]]).str.to_datetime()[0]
    t0 = pl.coalesce("send_ts", "ts")
    next_send = rows.filter(pl.col("send_ts").is_not_null()).select("user_id", next_ts=pl.col("send_ts"))
    windows = (
        rows.join(next_send, on="user_id", how="left")
        .with_columns(cut=(pl.col("next_ts") > t0) & (pl.col("next_ts") <= t0 + timedelta(days=7)))
        .group_by("row_id")
        .agg(pl.col("cut").any(), pl.first("label_conversion"), open_end=(t0 + timedelta(days=7)).first())
    )
    censored = windows.filter(~pl.col("cut") & (pl.col("open_end") > decisions_end))
    assert censored.height > 0 and censored["label_conversion"].null_count() == censored.height
    complete = windows.filter(pl.col("cut") | (pl.col("open_end") <= decisions_end))
    assert complete["label_conversion"].null_count() == 0
