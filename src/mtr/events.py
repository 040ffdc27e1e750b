"""The raw event-log contract: the tables `mtr simulate` writes and `mtr build-dataset` reads.

A real platform's export becomes usable by writing these tables. All timestamps are
`Datetime("us", "UTC")`; `meta.json` gives the observation window `[log_start, log_end)`.
"""

from __future__ import annotations

import polars as pl

from mtr.tables import DtypeSpec

TIMESTAMP = pl.Datetime("us", "UTC")
META_FILE = "meta.json"

# table -> column -> dtype. Extra columns are allowed and ignored.
EVENT_TABLES: dict[str, dict[str, DtypeSpec]] = {
    # One row per user, with observed attributes only (latent traits live in the simulator's truth/).
    "users": {
        "user_id": pl.Int64,
        "signup_ts": pl.Datetime,
        "country": pl.String,
        "platform": pl.String,  # ios / android / web
        "plan": pl.String,  # free / trial / premium
        "age_bucket": pl.String,
    },
    # The message catalog: templates and the channels each may use.
    "messages": {
        "message_id": pl.Int64,
        "message_type": pl.String,  # upsell_offer / content_recommendation / reminder / product_news
        "topic": pl.String,
        "has_discount": pl.Boolean,
        "headline_length": pl.Int32,
        "channels": pl.List,  # list of channel names
    },
    # Every sending opportunity (a decision), including "send nothing".
    # message_id, hour and send_ts are null, and channel is "none", when nothing was sent.
    "opportunities": {
        "opportunity_id": pl.Int64,
        "user_id": pl.Int64,
        "ts": pl.Datetime,  # decision time
        "policy_id": pl.String,
        "message_id": pl.Int64,
        "channel": pl.String,  # push / email / in_app / none
        "hour": pl.Int32,  # hour of day of the send
        "send_ts": pl.Datetime,
        "propensity": pl.Float64,  # logging policy's probability of this action
    },
    # Tracked opens and clicks; each refers to the send (opportunity) it came from.
    "engagements": {
        "opportunity_id": pl.Int64,
        "user_id": pl.Int64,
        "channel": pl.String,
        "ts": pl.Datetime,
        "kind": pl.String,  # open / click
    },
    # Purchases, not linked to any message: build-dataset attributes them.
    "conversions": {
        "user_id": pl.Int64,
        "ts": pl.Datetime,
        "value": pl.Float64,
    },
    # Opt-outs of one channel; the channel can no longer be used for that user.
    "unsubscribes": {
        "user_id": pl.Int64,
        "channel": pl.String,
        "ts": pl.Datetime,
    },
    # One row per user and active day.
    "activity": {
        "user_id": pl.Int64,
        "date": pl.Date,
        "sessions": pl.Int32,
    },
}
