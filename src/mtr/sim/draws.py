"""The event tables of a simulated log, with the timing of every event drawn here.

Timestamps are integer microseconds, so every event lies strictly inside the window its label rule
reads: opens and clicks < 48 h after the send, unsubscribes < 1 h after it, conversions inside the
hazard segment they were drawn in, and nothing at or after `log_end`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mtr.events import TIMESTAMP
from mtr.schema import NO_SEND
from mtr.sim.engine import SimulatedLog
from mtr.sim.outcomes import sigmoid
from mtr.sim.population import CHANNEL_NAMES, DAY_US

HOUR_US = 3_600_000_000
OPEN_DELAY_HOURS = 3.0  # mean delay of an open (truncated exponential)
MAX_OPEN_DELAY_HOURS = 47.0
CLICK_RATE = 0.3  # share of opens followed by a click
MAX_CLICK_DELAY_HOURS = 0.5
CONVERSION_WINDOW_US = 7 * DAY_US


def _timestamps(epoch_us: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(epoch_us, dtype=np.int64), dtype=pl.Int64).cast(TIMESTAMP)


def _channels(index: np.ndarray) -> np.ndarray:
    return np.array(CHANNEL_NAMES)[index]


def send_times_us(log: SimulatedLog) -> np.ndarray:
    """[U, D] send time in epoch microseconds (-1 for no send)."""
    days = np.arange(log.history.hour.shape[1], dtype=np.int64)
    times = log.start_us + days * DAY_US + log.history.hour.astype(np.int64) * HOUR_US
    return np.where(log.history.sent, times, -1)


def opportunities_frame(log: SimulatedLog) -> pl.DataFrame:
    """One row per user and day, ordered by (day, user); opportunity_id = day * U + user_id."""
    n_users, days = log.history.hour.shape
    day, user = (grid.ravel() for grid in np.indices((days, n_users)))
    h = log.history
    sent = h.sent[user, day]
    send_only = {
        "message_id": pl.Series(h.message[user, day] + 1, dtype=pl.Int64),
        "hour": pl.Series(h.hour[user, day], dtype=pl.Int32),
        "send_ts": _timestamps(send_times_us(log)[user, day]),
    }
    return pl.DataFrame(
        {
            "opportunity_id": pl.Series(day.astype(np.int64) * n_users + user + 1, dtype=pl.Int64),
            "user_id": pl.Series(log.users.user_id[user], dtype=pl.Int64),
            "ts": _timestamps(log.start_us + day.astype(np.int64) * DAY_US),
            **send_only,
            "channel": np.where(sent, _channels(np.maximum(h.channel[user, day], 0)), NO_SEND),
            "propensity": log.propensity[user, day],
            "_sent": sent,
        }
    ).select(
        "opportunity_id",
        "user_id",
        "ts",
        pl.lit(log.world.policy_id, dtype=pl.String).alias("policy_id"),
        pl.when("_sent").then("message_id").alias("message_id"),
        "channel",
        *(pl.when("_sent").then(pl.col(name)).alias(name) for name in ("hour", "send_ts")),
        "propensity",
    )


def engagement_frame(log: SimulatedLog, rng: np.random.Generator) -> pl.DataFrame:
    """Opens (and some clicks) of engaged sends, each carrying its opportunity_id."""
    n_users = log.history.hour.shape[0]
    user, day = np.nonzero(log.engaged)
    send_us = send_times_us(log)[user, day]
    # Inverse CDF of an exponential truncated at MAX_OPEN_DELAY_HOURS.
    tail = 1.0 - np.exp(-MAX_OPEN_DELAY_HOURS / OPEN_DELAY_HOURS)
    delay = -OPEN_DELAY_HOURS * np.log1p(-rng.random(len(user)) * tail)
    open_us = send_us + np.floor(delay * HOUR_US).astype(np.int64)
    clicked = rng.random(len(user)) < CLICK_RATE
    click_us = open_us + np.floor(rng.random(len(user)) * MAX_CLICK_DELAY_HOURS * HOUR_US).astype(np.int64)
    rows = np.concatenate([np.arange(len(user)), np.nonzero(clicked)[0]])
    kind = np.concatenate([np.full(len(user), "open"), np.full(int(clicked.sum()), "click")])
    frame = pl.DataFrame(
        {
            "opportunity_id": pl.Series(day[rows].astype(np.int64) * n_users + user[rows] + 1, dtype=pl.Int64),
            "user_id": pl.Series(log.users.user_id[user[rows]], dtype=pl.Int64),
            "channel": _channels(log.history.channel[user[rows], day[rows]]),
            "ts": _timestamps(np.concatenate([open_us, click_us[clicked]])),
            "kind": kind,
        }
    )
    return _before_end(frame, log).sort("ts", "opportunity_id", "kind", maintain_order=True)


def unsubscribe_frame(log: SimulatedLog, rng: np.random.Generator) -> pl.DataFrame:
    """Opt-outs, each less than 1 h after the send that caused it."""
    user, day = np.nonzero(log.unsubscribed)
    ts = send_times_us(log)[user, day] + np.floor(rng.random(len(user)) * HOUR_US).astype(np.int64)
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(log.users.user_id[user], dtype=pl.Int64),
            "channel": _channels(log.history.channel[user, day]),
            "ts": _timestamps(ts),
        }
    )
    return _before_end(frame, log).sort("ts", "user_id", maintain_order=True)


def conversion_frame(log: SimulatedLog, rng: np.random.Generator) -> pl.DataFrame:
    """Purchases from the piecewise-constant hazard organic(u) + lift(latest send, while < 7 days old)."""
    truth = log.truth
    send_us = send_times_us(log)
    user, day = np.nonzero(log.history.sent)  # user-major, then day: each user's sends in time order
    start = send_us[user, day]
    same_user_next = np.append(user[1:] == user[:-1], False)
    following = np.where(same_user_next, np.roll(start, -1), log.log_end_us)
    lifted_end = np.minimum(start + CONVERSION_WINDOW_US, following)
    first_send = np.full(len(log.users.user_id), log.log_end_us, dtype=np.int64)
    senders, first = np.unique(user, return_index=True)  # `user` is sorted: first index = earliest send
    first_send[senders] = start[first]
    organic = truth.organic
    segment_start = np.concatenate([np.full(len(first_send), log.log_start_us), start, lifted_end])
    segment_end = np.concatenate([first_send, lifted_end, following])
    segment_user = np.concatenate([np.arange(len(first_send)), user, user])
    rate = organic[segment_user] + np.concatenate(
        [np.zeros(len(first_send)), truth.lift[user, day], np.zeros(len(user))]
    )
    length = segment_end - segment_start
    counts = rng.poisson(rate * length / DAY_US)
    which = np.repeat(np.arange(len(counts)), counts)
    ts = segment_start[which] + np.floor(rng.random(len(which)) * length[which]).astype(np.int64)
    value = np.round(rng.lognormal(3.3, 0.6, len(which)), 2)
    frame = pl.DataFrame(
        {
            "user_id": pl.Series(log.users.user_id[segment_user[which]], dtype=pl.Int64),
            "ts": _timestamps(ts),
            "value": value,
        }
    )
    return frame.sort("ts", "user_id", maintain_order=True)


def activity_frame(log: SimulatedLog, rng: np.random.Generator) -> pl.DataFrame:
    """Active days from log_start to log_end: day t active with q = sigmoid(base + send effects)."""
    truth = log.truth
    n_days = (log.log_end_us - log.log_start_us) // DAY_US
    logits = truth.activity_base[:, None] + truth.offsets[:, :n_days]
    active = rng.random(logits.shape) < sigmoid(logits)
    user, column = np.nonzero(active)
    sessions = 1 + rng.poisson(np.exp(0.3 * log.users.drivers[user, 2]))
    first_date = log.log_start_us // DAY_US
    return pl.DataFrame(
        {
            "user_id": pl.Series(log.users.user_id[user], dtype=pl.Int64),
            "date": pl.Series((first_date + column).astype(np.int32), dtype=pl.Int32).cast(pl.Date),
            "sessions": pl.Series(sessions, dtype=pl.Int32),
        }
    )


def _before_end(frame: pl.DataFrame, log: SimulatedLog) -> pl.DataFrame:
    return frame.filter(pl.col("ts") < _timestamps(np.array([log.log_end_us]))[0])
