"""True probabilities of any action at any logged opportunity, holding the rest of the log fixed.

`WorldTruth` is built once from the world, its users and catalog, and the logged sends; the simulator
uses it for `truth/logged_probabilities.parquet` and to draw conversions and activity, the oracle for
counterfactual actions. The label rules it matches are those of `mtr build-dataset`:
engagement and unsubscribe within 48 h of the send; conversion in [t0, min(t0 + 7 d, next send,
log_end)); retention active on any day d + 22 .. d + 28; the decision reward of conversion, any
conversion in [decision, decision + 7 d), the same window whatever the action; and the long-term outcome,
active days in [d + 1, d + 56] (an expected count), which the weariness of sends moves for months.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mtr.sim.catalog import Catalog
from mtr.sim.config import CONVERSION_WINDOW_DAYS, LONG_TERM_DAYS, OBJECTIVES, RETENTION_DAYS, WorldConfig
from mtr.sim.history import NO_SEND, SendHistory, later_lift_integrals, neighbour_sends, recent_send_counts
from mtr.sim.outcomes import (
    SendOutcomes,
    Sends,
    activity_base,
    activity_offsets,
    conversion_probability,
    decision_conversion_probability,
    expected_active_days,
    long_term_window,
    organic_rate,
    own_send_delta,
    retention_probability,
    retention_window,
    send_outcomes,
    weariness_offsets,
)
from mtr.sim.population import Population


@dataclass(frozen=True)
class Probabilities:
    """True label probabilities [N] of N (opportunity, action) pairs, one per objective the world simulates
    (engagement/unsubscribe nan for no send), and the decision reward of conversion (`decision_conversion`)."""

    conversion: np.ndarray
    engagement: np.ndarray
    retention: np.ndarray
    unsubscribe: np.ndarray
    decision_conversion: np.ndarray
    active_days_8w: np.ndarray

    def columns(self) -> dict[str, pl.Series]:
        """`p_{objective}` [N] Float64 in the objective table's order, then `p_decision_conversion` and
        `p_active_days_8w` (an expected count: the truth of a continuous label); null where the objective does
        not apply."""
        names = (*OBJECTIVES, "decision_conversion", "active_days_8w")
        return {f"p_{name}": pl.Series(f"p_{name}", getattr(self, name)).fill_nan(None) for name in names}


class WorldTruth:
    """The outcome model bound to one logged history.

    Args:
        world: the world's config.
        users: the population (with latent traits).
        catalog: the message catalog.
        history: the logged sends [U, D]; the log ends at the end of the last day.
    """

    def __init__(self, world: WorldConfig, users: Population, catalog: Catalog, history: SendHistory) -> None:
        self.world, self.users, self.catalog, self.history = world, users, catalog, history
        n_users, days = history.hour.shape
        self.days = days
        self.log_end = float(days)
        user, day = np.nonzero(history.sent)
        logged = self.send_outcomes(
            user, day, history.message[user, day], history.channel[user, day], history.hour[user, day]
        )
        self.logged = logged
        self.lift = np.zeros((n_users, days))
        self.lift[user, day] = logged.lift
        self.activity_effect = np.zeros((n_users, days))
        self.activity_effect[user, day] = logged.activity_effect
        self.next_send, self.previous_time, self.previous_lift = neighbour_sends(history, self.lift)
        self.later_lift = later_lift_integrals(history, self.lift, self.next_send, CONVERSION_WINDOW_DAYS, self.log_end)
        self.organic = organic_rate(world, users)
        self.activity_base = activity_base(world, users)
        # Retention and long-term truth read up to day d + 56 of every opportunity day, past the log's end.
        horizon = days + max(RETENTION_DAYS[1], LONG_TERM_DAYS) + 1
        self.sent = history.sent.astype(np.float64)
        self.offsets = activity_offsets(self.activity_effect, horizon) + weariness_offsets(world, self.sent, horizon)

    def send_outcomes(
        self, user: np.ndarray, day: np.ndarray, message: np.ndarray, channel: np.ndarray, hour: np.ndarray
    ) -> SendOutcomes:
        """Outcome rates of N sends (user, day, message, channel, hour indices), fatigue from the log."""
        recent, recent_channel = recent_send_counts(self.history, user, day, hour, channel)
        sends = Sends(user, message, channel, hour, recent, recent_channel)
        return send_outcomes(self.world, self.users, self.catalog, sends)

    def evaluate(
        self, user: np.ndarray, day: np.ndarray, message: np.ndarray, channel: np.ndarray, hour: np.ndarray
    ) -> Probabilities:
        """True probabilities of the labels if the action (message, channel, hour) had been taken at
        the opportunity (user, day), every other decision of the log unchanged.

        Args:
            user, day: [N] the opportunity (user index, opportunity day).
            message, channel, hour: [N] the action (indices); -1 in all three for "send nothing".
        """
        is_send = message != NO_SEND
        outcomes = self.send_outcomes(
            user, day, np.where(is_send, message, 0), np.where(is_send, channel, 0), np.where(is_send, hour, 0)
        )
        start = day + np.where(is_send, hour, 0) / 24.0
        conversion = conversion_probability(
            start,
            np.where(is_send, outcomes.lift, 0.0),
            self.organic[user],
            self.next_send[user, day],
            self.previous_time[user, day],
            np.where(is_send, 0.0, self.previous_lift[user, day]),
            self.log_end,
        )
        decision_conversion = decision_conversion_probability(
            day.astype(np.float64),
            np.where(is_send, start, np.inf),
            np.where(is_send, outcomes.lift, 0.0),
            self.organic[user],
            self.next_send[user, day],
            self.previous_time[user, day],
            self.previous_lift[user, day],
            self.later_lift[user, day],
            self.log_end,
        )
        effect_delta = np.where(is_send, outcomes.activity_effect, 0.0) - self.activity_effect[user, day]
        send_delta = is_send.astype(np.float64) - self.sent[user, day]
        base = self.activity_base[user]
        retention = retention_probability(
            base,
            retention_window(self.offsets, user, day),
            own_send_delta(self.world, effect_delta, send_delta, *RETENTION_DAYS),
        )
        active_days = expected_active_days(
            base,
            long_term_window(self.offsets, user, day),
            own_send_delta(self.world, effect_delta, send_delta, 1, LONG_TERM_DAYS),
        )
        return Probabilities(
            conversion=conversion,
            engagement=np.where(is_send, outcomes.p_engagement, np.nan),
            retention=retention,
            unsubscribe=np.where(is_send, outcomes.p_unsubscribe, np.nan),
            decision_conversion=decision_conversion,
            active_days_8w=active_days,
        )

    def logged_probabilities(self) -> Probabilities:
        """[U * D] truth of the logged actions, in (day, user) order (the order of opportunity ids)."""
        day, user = (grid.ravel() for grid in np.indices((self.days, len(self.users.user_id))))
        h = self.history
        return self.evaluate(user, day, h.message[user, day], h.channel[user, day], h.hour[user, day])
