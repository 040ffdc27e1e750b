"""A hand-made event log whose labels and features are worked out by hand in the tests.

Day numbers count from 2024-01-01 00:00 UTC; the log is observed over days [0, 45).

User 1: push send (opp 1, day 0), email send (opp 2, day 2), no-send (opp 3, day 4), push send
(opp 4, day 5) unsubscribed 11 h later, no-send (opp 9, day 10). User 2: no-send (opp 5, day 10),
in-app send (opp 6, day 20) engaged only after 49 h, email send (opp 7, day 40) whose conversion
window is closed by the next send, push send at 23:00 (opp 8, day 44) whose 48 h end after the log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from mtr.events import TIMESTAMP

START = datetime(2024, 1, 1, tzinfo=UTC)
END_DAY = 45
Tables = dict[str, pl.DataFrame]


def at(day: float, hour: float = 0.0) -> datetime:
    """A UTC moment `day` days and `hour` hours after the log start."""
    return START + timedelta(days=day, hours=hour)


LOG_END = at(END_DAY)


def opportunity(opp: int, user: int, day: int, channel: str, hour: int | None = None, message: int = 10) -> dict:
    """One opportunity decided at 06:00 of `day`; a send goes out at `hour` the same day."""
    send = channel != "none"
    return {
        "opportunity_id": opp,
        "user_id": user,
        "ts": at(day, 6),
        "policy_id": "handmade",
        "message_id": message if send else None,
        "channel": channel,
        "hour": hour if send else None,
        "send_ts": at(day, hour) if send else None,
        "propensity": 0.25,
    }


def frame(rows: list[dict], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


def events(schema: dict[str, pl.DataType], *rows: tuple) -> pl.DataFrame:
    """An event table from tuples in the schema's column order."""
    return frame([dict(zip(schema, row, strict=True)) for row in rows], schema)


OPPORTUNITY_SCHEMA = {
    "opportunity_id": pl.Int64,
    "user_id": pl.Int64,
    "ts": TIMESTAMP,
    "policy_id": pl.String,
    "message_id": pl.Int64,
    "channel": pl.String,
    "hour": pl.Int32,
    "send_ts": TIMESTAMP,
    "propensity": pl.Float64,
}
ENGAGEMENT_SCHEMA = {
    "opportunity_id": pl.Int64,
    "user_id": pl.Int64,
    "channel": pl.String,
    "ts": TIMESTAMP,
    "kind": pl.String,
}
CONVERSION_SCHEMA = {"user_id": pl.Int64, "ts": TIMESTAMP, "value": pl.Float64}
UNSUBSCRIBE_SCHEMA = {"user_id": pl.Int64, "channel": pl.String, "ts": TIMESTAMP}
ACTIVITY_SCHEMA = {"user_id": pl.Int64, "date": pl.Date, "sessions": pl.Int32}


def handmade_tables() -> Tables:
    """The event tables described in the module docstring."""
    opportunities = [
        opportunity(1, 1, 0, "push", 9),
        opportunity(2, 1, 2, "email", 9, message=11),
        opportunity(3, 1, 4, "none"),
        opportunity(4, 1, 5, "push", 9),
        opportunity(9, 1, 10, "none"),
        opportunity(5, 2, 10, "none"),
        opportunity(6, 2, 20, "in_app", 9),
        opportunity(7, 2, 40, "email", 9),
        opportunity(8, 2, 44, "push", 23),
    ]
    engagements = [
        (1, 1, "push", at(0, 10), "open"),
        (6, 2, "in_app", at(22, 10), "open"),  # 49 h after the send: too late
        (8, 2, "push", at(44, 23.5), "click"),  # inside 48 h, but the 48 h end after log_end
    ]
    conversions = [
        (1, at(3, 12), 20.0),  # in opp 2's window; opp 1's window closed at opp 2's send
        (1, at(5, 10), 5.0),  # one hour after opp 4's send
        (2, at(12), 7.0),  # opp 5 (no-send) window [day 10 06:00, day 17 06:00)
        (2, at(30), 9.0),  # 10 days after opp 6: outside its 7 days
    ]
    unsubscribes = [(1, "push", at(5, 20))]  # attributed to opp 4, the latest push before it
    activity = [(1, START.date() + timedelta(days=d), 1) for d in (1, 3, 25)]
    activity += [(2, START.date() + timedelta(days=35), 2)]
    users = pl.DataFrame(
        {
            "user_id": [1, 2],
            "signup_ts": [at(-100), at(-10)],
            "country": ["us", "de"],
            "platform": ["ios", "web"],
            "plan": ["free", "premium"],
            "age_bucket": ["25-34", "45-54"],
        },
        schema_overrides={"signup_ts": TIMESTAMP},
    )
    messages = pl.DataFrame(
        {
            "message_id": [10, 11],
            "message_type": ["upsell_offer", "reminder"],
            "topic": ["music", "news"],
            "has_discount": [True, False],
            "headline_length": [30, 40],
            "channels": [["push", "email", "in_app"], ["email"]],
        },
        schema_overrides={"headline_length": pl.Int32},
    )
    return {
        "users": users,
        "messages": messages,
        "opportunities": frame(opportunities, OPPORTUNITY_SCHEMA),
        "engagements": events(ENGAGEMENT_SCHEMA, *engagements),
        "conversions": events(CONVERSION_SCHEMA, *conversions),
        "unsubscribes": events(UNSUBSCRIBE_SCHEMA, *unsubscribes),
        "activity": events(ACTIVITY_SCHEMA, *activity),
    }


def truncate(tables: Tables, end: datetime) -> Tables:
    """The same world observed only until `end`: opportunities and events from `end` on are dropped."""
    cut = dict(tables)
    for name in ("opportunities", "engagements", "conversions", "unsubscribes"):
        cut[name] = tables[name].filter(pl.col("ts") < end)
    cut["activity"] = tables["activity"].filter(pl.col("date") < end.date())
    return cut
