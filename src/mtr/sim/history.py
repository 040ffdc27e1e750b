"""The logged sends as dense [users, days] arrays, and the look-backs that depend on them.

The simulator fills these arrays day by day; the oracle rebuilds them from the opportunities table.
Both then call the same functions (fatigue counts, channel cooldown, previous/next send), so the oracle
reproduces the simulator's truth exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtr.sim.config import FATIGUE_DAYS, LABEL_WINDOW_HOURS

NO_SEND = -1
NEVER = np.iinfo(np.int32).max  # unsubscribe day of a channel the user never left


@dataclass(frozen=True)
class SendHistory:
    """One decision per user and day: what was sent (or -1 for nothing).

    Attributes:
        hour: [U, D] int32 send hour, -1 for no send.
        channel: [U, D] int32 channel index, -1 for no send.
        message: [U, D] int32 message index (message_id - 1), -1 for no send.
    """

    hour: np.ndarray
    channel: np.ndarray
    message: np.ndarray

    @classmethod
    def empty(cls, n_users: int, days: int) -> SendHistory:
        return cls(*(np.full((n_users, days), NO_SEND, dtype=np.int32) for _ in range(3)))

    @property
    def sent(self) -> np.ndarray:
        """[U, D] bool."""
        return self.hour >= 0

    def send_time(self) -> np.ndarray:
        """[U, D] send time in days since the first opportunity day (nan for no send)."""
        days = np.arange(self.hour.shape[1])
        return np.where(self.sent, days + self.hour / 24.0, np.nan)


def recent_send_counts(
    history: SendHistory, users: np.ndarray, day: np.ndarray, hour: np.ndarray, channel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sends to each user in the 7 days before a send at (day, hour): in total and on `channel`.

    The window is [send_ts - 7 days, send_ts): days d-6..d-1 fully, day d-7 only at hours >= `hour`.

    Args:
        users, day, hour, channel: [N] the send being evaluated (user index, day, hour, channel index).

    Returns:
        (total [N], on_channel [N]) int counts.
    """
    total = np.zeros(len(users), dtype=np.int64)
    on_channel = np.zeros(len(users), dtype=np.int64)
    for back in range(1, FATIGUE_DAYS + 1):
        past = day - back
        ok = past >= 0
        safe = np.where(ok, past, 0)
        past_hour = history.hour[users, safe]
        counted = ok & (past_hour >= 0) & ((back < FATIGUE_DAYS) | (past_hour >= hour))
        total += counted
        on_channel += counted & (history.channel[users, safe] == channel)
    return total, on_channel


def sends_before_day(history: SendHistory, day: int) -> np.ndarray:
    """[U] sends in the 7 days before day `day` 00:00 (what the logging policy sees)."""
    return history.sent[:, max(day - FATIGUE_DAYS, 0) : day].sum(1)


def cooldown_blocked(
    history: SendHistory, users: np.ndarray, day: np.ndarray, hour: np.ndarray, channel: np.ndarray
) -> np.ndarray:
    """Frequency cap: a channel is used at most once per 48 h per user.

    With sends >= 48 h apart on a channel, an unsubscribe within 48 h of a send on that channel can only
    come from that send, so the unsubscribe label's truth is exactly the send's own probability.

    Args:
        users, day: [N] user indices and decision days.
        hour, channel: candidate actions, broadcastable to [N, K] (e.g. [1, A] for all actions of a
            day, [N, 1] for one action per row).

    Returns:
        [N, K] bool, True where the candidate is blocked.
    """
    blocked = np.zeros(np.broadcast_shapes((len(users), 1), np.shape(hour), np.shape(channel)), dtype=bool)
    full_days = -(-LABEL_WINDOW_HOURS // 24)  # a send on day d-k (k < this) is always < 48 h before
    for back in range(1, full_days + 1):
        past = day - back
        safe = np.maximum(past, 0)
        past_channel = np.where(past >= 0, history.channel[users, safe], NO_SEND)[:, None]
        too_close = (past * 24 + history.hour[users, safe] + LABEL_WINDOW_HOURS)[:, None] > (day * 24)[:, None] + hour
        blocked |= (past_channel == channel) & too_close
    return blocked


def neighbour_sends(history: SendHistory, lift: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every (user, day): the next send after that day and the latest send before it.

    Args:
        lift: [U, D] conversion lift of each logged send (0 for no send).

    Returns:
        next_time [U, D] (inf if none), previous_time [U, D] (-inf if none) in days since the first
        opportunity day, and previous_lift [U, D] (0 if none).
    """
    times = history.send_time()
    n_users, days = times.shape
    next_time = np.full((n_users, days), np.inf)
    previous_time = np.full((n_users, days), -np.inf)
    previous_lift = np.zeros((n_users, days))
    upcoming = np.full(n_users, np.inf)
    for day in range(days - 1, -1, -1):
        next_time[:, day] = upcoming
        upcoming = np.where(history.sent[:, day], times[:, day], upcoming)
    latest, latest_lift = np.full(n_users, -np.inf), np.zeros(n_users)
    for day in range(days):
        previous_time[:, day], previous_lift[:, day] = latest, latest_lift
        latest = np.where(history.sent[:, day], times[:, day], latest)
        latest_lift = np.where(history.sent[:, day], lift[:, day], latest_lift)
    return next_time, previous_time, previous_lift


def later_lift_integrals(
    history: SendHistory, lift: np.ndarray, next_time: np.ndarray, window_days: int, log_end: float
) -> np.ndarray:
    """[U, D] for every (user, day d): the integral of the logged sends' conversion lifts over
    [next send after d, min(d + window_days, log_end)), each send counting from its time until the next
    send or until it is `window_days` old, whichever comes first.

    Args:
        lift: [U, D] lift of each logged send (0 for no send).
        next_time: [U, D] the next send after each day (inf if none), from `neighbour_sends`.
    """
    times = history.send_time()
    n_users, days = times.shape
    integral = np.zeros((n_users, days))
    for offset in range(1, min(window_days, days - 1) + 1):  # the sends of days d + 1 .. d + window_days
        decision_days = np.arange(days - offset)
        sent = history.sent[:, offset:]
        start = np.where(sent, times[:, offset:], 0.0)  # rows without a send add 0 below
        end = np.minimum(decision_days + window_days, log_end)[None, :]
        stop = np.minimum(np.minimum(next_time[:, offset:], start + window_days), end)
        integral[:, : days - offset] += np.where(sent, lift[:, offset:] * np.clip(stop - start, 0.0, None), 0.0)
    return integral


def eligible_mask(
    history: SendHistory,
    users: np.ndarray,
    day: np.ndarray,
    can_push: np.ndarray,
    unsubscribe_day: np.ndarray,
    channel: np.ndarray,
    hour: np.ndarray,
) -> np.ndarray:
    """Which send actions each user can receive at the decision of its day.

    A channel is out if the user cannot receive it (web: no push), left it before this day, or got a
    send on it less than 48 h before the candidate send.

    Args:
        users, day: [N] user indices and decision days; can_push: [N] bool; unsubscribe_day: [N, 3]
            day each channel was left (NEVER if not).
        channel, hour: candidate actions, broadcastable to [N, K].

    Returns:
        [N, K] bool.
    """
    reachable = np.stack([can_push, np.ones_like(can_push), np.ones_like(can_push)], 1)
    reachable &= unsubscribe_day >= day[:, None]
    blocked = cooldown_blocked(history, users, day, hour, channel)
    return np.take_along_axis(reachable, np.broadcast_to(channel, blocked.shape), 1) & ~blocked
