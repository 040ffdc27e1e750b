"""The outcome model: pure numpy functions from (user, message, channel, hour, fatigue) to true rates.

The simulator draws its logs from these functions and the oracle evaluates counterfactual actions
with them, so there is one code path for the truth. Times are in days since the first opportunity
day (day d starts at d), rates are per day.

- engagement: P(open within 48 h of the send) = sigmoid(engagement logit).
- unsubscribe: P(opt-out of the send's channel within 1 h) = sigmoid(unsubscribe logit).
- conversion: a Poisson process per user with hazard organic(u) + lift(latest send, while < 7 days old).
- retention: day t is active with q = sigmoid(base(u) + sum of beta(s) over sends 1..28 days before t
  - long_term_strength * 0.04 * weariness(t)), weariness(t) = sum over sends on days d < t of
  2^(-(t - 1 - d) / 21): every send wears the user a little, for months.
- long-term activity: the expected number of active days in [d + 1, d + 56].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtr.sim.catalog import Catalog
from mtr.sim.config import (
    ACTIVITY_MEMORY_DAYS,
    CONVERSION_WINDOW_DAYS,
    LATENT_ORDER,
    LONG_TERM_DAYS,
    PRE_PERIOD_DAYS,
    RETENTION_DAYS,
    WEARINESS_HALF_LIFE_DAYS,
    WorldConfig,
)
from mtr.sim.population import Population

# Columns of the latent drivers and qualities.
ENGAGEMENT, CONVERSION, RETENTION, UNSUBSCRIBE = (
    LATENT_ORDER.index(name) for name in ("engagement", "conversion", "retention", "unsubscribe")
)
# Effects per channel (push, email, in_app) and per message type (upsell, content, reminder, news).
CHANNEL_ENGAGEMENT = np.array([-0.5, 0.0, 0.35])
TYPE_ENGAGEMENT = np.array([-0.1, 0.25, 0.0, -0.2])
CHANNEL_UNSUBSCRIBE = np.array([0.3, 0.0, -0.5])
TYPE_UNSUBSCRIBE = np.array([0.35, -0.1, 0.0, 0.1])
CHANNEL_CONVERSION = np.array([0.0, 0.1, 0.2])
WEARINESS_EFFECT = 0.04  # activity logit lost per unit of weariness at long_term_strength 1
TYPE_CONVERSION = np.array([0.7, 0.0, 0.1, -0.3])


@dataclass(frozen=True)
class Sends:
    """N sends to evaluate, logged or counterfactual.

    Attributes:
        user: [N] user index (user_id - 1).
        message: [N] message index (message_id - 1).
        channel: [N] channel index (push, email, in_app).
        hour: [N] send hour.
        recent: [N] the user's sends in the 7 days before this one.
        recent_channel: [N] of those, sends on the same channel.
    """

    user: np.ndarray
    message: np.ndarray
    channel: np.ndarray
    hour: np.ndarray
    recent: np.ndarray
    recent_channel: np.ndarray


@dataclass(frozen=True)
class SendOutcomes:
    """True rates of N sends.

    Attributes:
        p_engagement: [N] probability of an open within 48 h.
        p_unsubscribe: [N] probability of leaving the channel (within 1 h).
        lift: [N] extra conversions per day while the send is the latest and < 7 days old.
        activity_effect: [N] beta, added to the activity logit of each of the 28 days after the send's day.
    """

    p_engagement: np.ndarray
    p_unsubscribe: np.ndarray
    lift: np.ndarray
    activity_effect: np.ndarray


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def send_outcomes(world: WorldConfig, users: Population, catalog: Catalog, sends: Sends) -> SendOutcomes:
    """Evaluate the outcome model for N sends."""
    u, m, c = sends.user, sends.message, sends.channel
    # Per-task relevance of the message to the user: user driver + topic interest + template quality.
    relevance = users.drivers[u] + users.interest[u, :, catalog.topic[m]] + catalog.quality[m]  # [N, 4]
    affinity = users.affinity[u, c]
    kind = catalog.message_type[m]
    tiredness = world.fatigue_strength * users.fatigue_sensitivity[u]
    distance = np.abs(sends.hour - users.preferred_hour[u])
    hour_fit = -0.6 * (np.minimum(distance, 24.0 - distance) / 6.0) ** 2
    headline_fit = -0.3 * ((catalog.headline_length[m] - 45.0) / 25.0) ** 2
    engagement = (
        world.engagement_logit
        + CHANNEL_ENGAGEMENT[c]
        + TYPE_ENGAGEMENT[kind]
        + 0.7 * relevance[:, ENGAGEMENT]
        + affinity
        + hour_fit
        + headline_fit
        - tiredness * (0.06 * sends.recent + 0.2 * sends.recent_channel)
    )
    unsubscribe = (
        world.unsubscribe_logit
        + CHANNEL_UNSUBSCRIBE[c]
        + TYPE_UNSUBSCRIBE[kind]
        + 0.5 * relevance[:, UNSUBSCRIBE]
        - 0.15 * affinity
        + tiredness * (0.12 * sends.recent + 0.35 * sends.recent_channel)
    )
    lift = world.conversion_lift * np.exp(
        0.7 * relevance[:, CONVERSION]
        + CHANNEL_CONVERSION[c]
        + TYPE_CONVERSION[kind]
        + 0.5 * catalog.has_discount[m]
        + 0.2 * affinity
        - 0.05 * tiredness * sends.recent
    )
    # Relevant messages bring users back; tired users drift away.
    activity = world.activity_effect * (
        0.5 + relevance[:, RETENTION] + 0.5 * affinity - 0.25 * tiredness * sends.recent
    )
    return SendOutcomes(sigmoid(engagement), sigmoid(unsubscribe), lift, activity)


def organic_rate(world: WorldConfig, users: Population) -> np.ndarray:
    """[U] conversions per day without any message effect."""
    return world.organic_conversion_rate * np.exp(0.8 * users.drivers[:, CONVERSION])


def activity_base(world: WorldConfig, users: Population) -> np.ndarray:
    """[U] activity logit of a day without any message effect."""
    return world.activity_logit + users.drivers[:, RETENTION]


def conversion_probability(
    start: np.ndarray,
    own_lift: np.ndarray,
    organic: np.ndarray,
    next_send: np.ndarray,
    previous_time: np.ndarray,
    previous_lift: np.ndarray,
    log_end: float,
) -> np.ndarray:
    """P(at least one conversion in [start, min(start + 7, next send, log_end))).

    Args:
        start: [N] send time (or decision time of a no-send row), days.
        own_lift: [N] the row's send lift (0 for a no-send row).
        organic: [N] the user's organic rate per day.
        next_send: [N] the user's next send after the row (inf if none).
        previous_time, previous_lift: [N] the user's latest send before the row; its lift still counts
            in a no-send row's window until it is 7 days old. Pass previous_lift 0 for send rows.
        log_end: end of the observation window, days.
    """
    end = np.minimum(np.minimum(start + CONVERSION_WINDOW_DAYS, next_send), log_end)
    carried = np.clip(np.minimum(previous_time + CONVERSION_WINDOW_DAYS, end) - start, 0.0, None)
    hazard = (organic + own_lift) * (end - start) + previous_lift * carried
    return -np.expm1(-hazard)


def decision_conversion_probability(
    decision: np.ndarray,
    send_time: np.ndarray,
    own_lift: np.ndarray,
    organic: np.ndarray,
    next_send: np.ndarray,
    previous_time: np.ndarray,
    previous_lift: np.ndarray,
    later_lift: np.ndarray,
    log_end: float,
) -> np.ndarray:
    """P(at least one conversion in [decision, min(decision + 7, log_end))): the decision reward, the same
    window for every action, "send nothing" included; later decisions stay as logged.

    Until the action's send (or, without one, the next logged send) the previous send's lift counts while
    it is under 7 days old; the action's own lift from its send until the next logged send (or 7 days);
    from the next logged send on, the logged sends' lifts (`later_lift`, the same for every action).

    Args:
        decision: [N] decision time (00:00 of the opportunity day), days.
        send_time: [N] the action's send time (inf for "send nothing").
        own_lift: [N] the action's lift (0 for "send nothing").
        organic, next_send, previous_time, previous_lift: as in `conversion_probability`.
        later_lift: [N] integral of the logged sends' lifts from the next send to the window's end.
        log_end: end of the observation window, days.
    """
    end = np.minimum(decision + CONVERSION_WINDOW_DAYS, log_end)
    replaced = np.minimum(np.minimum(send_time, next_send), end)  # the previous send stops being the latest
    carried = np.clip(np.minimum(previous_time + CONVERSION_WINDOW_DAYS, replaced) - decision, 0.0, None)
    own = np.clip(np.minimum(np.minimum(send_time + CONVERSION_WINDOW_DAYS, next_send), end) - send_time, 0.0, None)
    hazard = (
        organic * (end - decision) + previous_lift * carried + np.where(np.isfinite(send_time), own_lift * own, 0.0)
    )
    return -np.expm1(-(hazard + later_lift))


def activity_offsets(activity_effect: np.ndarray, horizon_days: int) -> np.ndarray:
    """Sum of the send effects on each day's activity logit.

    Args:
        activity_effect: [U, D] beta of each opportunity day's send (0 for no send).
        horizon_days: days after the first opportunity day to cover.

    Returns:
        [U, PRE_PERIOD_DAYS + horizon_days] offsets; column j is day j - PRE_PERIOD_DAYS; a send on day
        d moves days d + 1 .. d + 28.
    """
    n_users, days = activity_effect.shape
    width = PRE_PERIOD_DAYS + horizon_days
    per_day = np.zeros((n_users, width + 1))
    per_day[:, PRE_PERIOD_DAYS + 1 : PRE_PERIOD_DAYS + 1 + days] = activity_effect  # shifted: effect from d + 1
    cumulative = np.cumsum(per_day, axis=1)  # [:, j] = effects of sends on days < j - PRE_PERIOD_DAYS
    lagged = np.zeros_like(cumulative)
    lagged[:, ACTIVITY_MEMORY_DAYS:] = cumulative[:, :-ACTIVITY_MEMORY_DAYS]
    return (cumulative - lagged)[:, :width]


def weariness_kernel(world: WorldConfig, lags: np.ndarray) -> np.ndarray:
    """Activity-logit change on a day `lags` days after a send's day: -strength * 0.04 * 2^(-(lag - 1) / 21) from
    the next day on (lag >= 1), 0 before."""
    decay = weariness_weights(lags)
    return np.where(np.asarray(lags) >= 1, -world.long_term_strength * WEARINESS_EFFECT * decay, 0.0)


def weariness_weights(lags: np.ndarray) -> np.ndarray:
    """How much of a send's weariness is left `lags` days after its day: 2^(-(lag - 1) / 21), 1 on the next day."""
    return np.exp2(-(np.asarray(lags, dtype=np.float64) - 1.0) / WEARINESS_HALF_LIFE_DAYS)


def weariness_offsets(world: WorldConfig, sent: np.ndarray, horizon_days: int) -> np.ndarray:
    """[U, PRE_PERIOD_DAYS + horizon_days] the weariness of the sends `sent` [U, D] on each day's activity logit,
    in the columns of `activity_offsets` (zeros at long_term_strength 0)."""
    n_users, days = sent.shape
    offsets = np.zeros((n_users, PRE_PERIOD_DAYS + horizon_days))
    if world.long_term_strength == 0:
        return offsets
    stock = np.zeros(n_users)
    for day in range(1, horizon_days):  # weariness of day t: sends of days < t, the latest weighing 1
        stock = weariness_after(stock, sent[:, day - 1] if day - 1 < days else 0.0)
        offsets[:, PRE_PERIOD_DAYS + day] = stock
    return weariness_logit(world, offsets)


def weariness_after(weariness: np.ndarray, sent: np.ndarray | float) -> np.ndarray:
    """[U] the weariness of the next day from a day's `weariness` [U] and the day's sends `sent` [U] (0 or 1): a
    day's decay, then the day's sends weighing 1. One step of `weariness_offsets`, for a caller that runs day by
    day (`mtr.rl.env`)."""
    return weariness * np.exp2(-1.0 / WEARINESS_HALF_LIFE_DAYS) + sent


def weariness_logit(world: WorldConfig, weariness: np.ndarray) -> np.ndarray:
    """The activity-logit change of a weariness (any shape): -long_term_strength * 0.04 per unit."""
    return -world.long_term_strength * WEARINESS_EFFECT * weariness


def effect_in_window(effect_totals: np.ndarray, day: int) -> np.ndarray:
    """[U] the 28-day send effects on day `day`'s activity logit (the `activity_offsets` part of its offset), from
    running totals: `effect_totals[:, k]` [U, > day] is the sum of the effects of the sends of days before k,
    accumulated day by day as `activity_offsets`' cumulative sum does, so the two agree to the bit."""
    return effect_totals[:, day] - effect_totals[:, max(day - ACTIVITY_MEMORY_DAYS, 0)]


def lift_overlap(start: np.ndarray, next_send: np.ndarray, first: float, last: float) -> np.ndarray:
    """Days of [first, last) in which a send at `start` lifts conversions: from its time until the next send
    `next_send` or until it is 7 days old (any shapes that broadcast; 0 for start = -inf or +inf)."""
    end = np.minimum(start + CONVERSION_WINDOW_DAYS, next_send)
    return np.clip(np.minimum(end, last) - np.maximum(start, first), 0.0, None)


def retention_window(offsets: np.ndarray, users: np.ndarray, day: np.ndarray) -> np.ndarray:
    """[N, 7] activity offsets of days d + 22 .. d + 28 for rows (user, day d)."""
    return days_after(offsets, users, day, RETENTION_DAYS[0], RETENTION_DAYS[1])


def long_term_window(offsets: np.ndarray, users: np.ndarray, day: np.ndarray) -> np.ndarray:
    """[N, 56] activity offsets of days d + 1 .. d + 56 for rows (user, day d)."""
    return days_after(offsets, users, day, 1, LONG_TERM_DAYS)


def days_after(offsets: np.ndarray, users: np.ndarray, day: np.ndarray, first: int, last: int) -> np.ndarray:
    """[N, last - first + 1] activity offsets of days d + first .. d + last for rows (user, day d)."""
    columns = (PRE_PERIOD_DAYS + day + first)[:, None] + np.arange(last - first + 1)
    return offsets[users[:, None], columns]


def own_send_delta(
    world: WorldConfig, effect_delta: np.ndarray, send_delta: np.ndarray, first: int, last: int
) -> np.ndarray:
    """[N, last - first + 1] how the row's own action moves the activity logits of days d + first .. d + last:
    its 28-day effect (`effect_delta`, counterfactual minus logged beta) and its weariness (`send_delta`: +1 for a
    send where none was logged, -1 the reverse, 0 otherwise)."""
    lags = np.arange(first, last + 1)
    short = np.where(lags <= ACTIVITY_MEMORY_DAYS, 1.0, 0.0)
    return effect_delta[:, None] * short + send_delta[:, None] * weariness_kernel(world, lags)


def retention_probability(base: np.ndarray, window: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """P(active on any day of the window) = 1 - prod(1 - sigmoid(base + offset + delta)).

    Args:
        base: [N] the user's activity logit without messages.
        window: [N, 7] offsets of the label days from the logged sends.
        delta: [N] or [N, 7] change of the row's own action (counterfactual minus logged; 0 for logged).
    """
    logits = base[:, None] + window + (delta[:, None] if delta.ndim == 1 else delta)
    return -np.expm1(-np.logaddexp(0.0, logits).sum(1))


def expected_active_days(base: np.ndarray, window: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """[N] the expected number of active days of the window: sum of sigmoid(base + offset + delta)."""
    return sigmoid(base[:, None] + window + delta).sum(1)
