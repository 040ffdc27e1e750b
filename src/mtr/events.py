"""The raw event-log contract: the tables `mtr simulate` writes and `mtr build-dataset` reads.

A real platform's export becomes usable by writing these tables. All timestamps are
`Datetime("us", "UTC")`; `meta.json` gives the observation window `[log_start, log_end)`. The contract names
keys, times and actions only: a platform's own attributes (a user's language, a message's campaign) are
further columns, and a feature config (`mtr.data.feature_config`) declares which of them are features.
The optional `candidates` table lists every action that was possible at each decision.
"""

from __future__ import annotations

import polars as pl

from mtr.tables import DtypeSpec

TIMESTAMP = pl.Datetime("us", "UTC")
META_FILE = "meta.json"

# table -> column -> dtype. Extra columns are allowed and ignored.
EVENT_TABLES: dict[str, dict[str, DtypeSpec]] = {
    # One row per user, with observed attributes (the simulator's: country, platform, plan, age_bucket).
    "users": {
        "user_id": pl.Int64,
        "signup_ts": pl.Datetime,
    },
    # The message catalog: templates and the channels each may use, with their attributes (the simulator's:
    # message_type, topic, has_discount, headline_length).
    "messages": {
        "message_id": pl.Int64,
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

# Optional columns of the contract's tables, kept (timestamps brought to UTC) where a table has them: a message's
# launch time, before which no candidate may offer it (`mtr.data.candidates`).
OPTIONAL_COLUMNS: dict[str, dict[str, DtypeSpec]] = {
    "messages": {"launched_ts": pl.Datetime},
}

# Optional: every action that was possible at each decision, "none" included, with the logging policy's
# probability of each (null where the logger does not know it). The taken action is one of them.
CANDIDATES_TABLE = "candidates"
CANDIDATES_FILE = f"{CANDIDATES_TABLE}.parquet"  # in an event-log folder, and in a dataset built from one
CANDIDATE_COLUMNS: dict[str, DtypeSpec] = {
    "opportunity_id": pl.Int64,
    "message_id": pl.Int64,  # null for "none"
    "channel": pl.String,  # push / email / in_app / none
    "hour": pl.Int32,  # null for "none"
    "propensity": pl.Float64,
}
