"""The simulated world's knobs (`WorldConfig`) and the fixed vocabularies of its observed features."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from mtr.errors import InputError

COUNTRIES = ("US", "GB", "DE", "BR", "IN")
PLATFORMS = ("ios", "android", "web")
PLANS = ("free", "trial", "premium")
AGE_BUCKETS = ("18-24", "25-34", "35-44", "45-54", "55+")
MESSAGE_TYPES = ("upsell_offer", "content_recommendation", "reminder", "product_news")
TOPICS = ("fitness", "finance", "travel", "music", "cooking")
# The outcomes the world simulates, in the messaging objective table's order: the order of the p_{objective}
# columns and summaries the simulator writes and the oracle returns. A dataset may declare more objectives
# (computed from the logs by their label rules); the world draws these four, so only they have a truth.
OBJECTIVES = ("conversion", "engagement", "retention", "unsubscribe")
# The order in which the world draws its per-objective latent traits (user drivers, topic interests, template
# quality) and stores them in [..., 4] arrays. It is part of the world's physics: another order would hand each
# objective another random draw and so simulate another world.
LATENT_ORDER = ("engagement", "conversion", "retention", "unsubscribe")

PRE_PERIOD_DAYS = 28  # activity is logged this many days before the first opportunity day
LABEL_WINDOW_HOURS = 48  # engagement and unsubscribe label windows
CONVERSION_WINDOW_DAYS = 7  # a send's conversion lift lasts this long (and the conversion label window)
FATIGUE_DAYS = 7  # sends in the last 7 days make users tired
RETENTION_DAYS = (22, 28)  # retention label: active on any day in [d + 22, d + 28]
ACTIVITY_MEMORY_DAYS = 28  # a send moves the activity probability of the 28 days after its day
MIN_HOUR_GAP = 3  # sends of consecutive days are at least this many hours apart (unsubscribes take < 1 h)
LONG_TERM_DAYS = 56  # the long-term outcome: active days in [d + 1, d + 56], the 8 weeks after the decision's day
WEARINESS_HALF_LIFE_DAYS = 21.0  # a send's weariness halves every 3 weeks


@dataclass(frozen=True)
class WorldConfig:
    """Everything about the simulated world except its size and seed.

    Args:
        start_date: first opportunity day (ISO date); activity starts 28 days earlier (`log_start`).
            The logging policy decides every day until the log ends, as a platform's does until the
            extract: there is no quiet follow-up, so the last days' labels are immature, as in a real log.
        n_messages: message templates in the catalog.
        live_messages: average number of templates live on a day (campaign schedule).
        hours: send hours of the day offered to the policy, ascending; the last slot at least 3 h
            before the next day's first, so that sends of consecutive days are 3+ h apart.
        task_correlation: rho in [0, 1]; each task's latent driver is sqrt(rho) * shared +
            sqrt(1 - rho) * task-specific, so rho sets how correlated the tasks' true logits are.
        policy_id: name of the logging policy written to the opportunities table.
        exploration: share of each decision spread uniformly over all eligible actions (incl. none).
        none_share: probability that the greedy part of the policy sends nothing (before fatigue).
        policy_temperature: softmax temperature over the heuristic scores of send actions.
        fatigue_strength: multiplies every fatigue effect (0 switches fatigue off).
        engagement_logit: base logit of an open (per send, before user/message/channel effects).
        unsubscribe_logit: base logit of an unsubscribe per send.
        organic_conversion_rate: median organic purchase rate per user and day.
        conversion_lift: median extra purchase rate per day while a send is the latest and < 7 days old.
        activity_logit: base logit of a user being active on a day.
        activity_effect: scale of one send's effect on the daily activity logit of the next 28 days.
        long_term_strength: how much sends wear users out over months (0: not at all, today's world, where the
            28-day activity effect is all and the myopic policy is right). Every send adds weariness that halves
            every 3 weeks; each day's activity logit falls by `long_term_strength * 0.04` per unit of weariness,
            so a policy that sends a lot wins today's opens and loses active days over the following weeks.
    """

    start_date: str = "2024-03-04"
    n_messages: int = 24
    live_messages: int = 8
    hours: tuple[int, ...] = (8, 12, 18, 21)
    task_correlation: float = 0.5
    policy_id: str = "logging_v1"
    exploration: float = 0.1
    none_share: float = 0.45
    policy_temperature: float = 1.0
    fatigue_strength: float = 1.0
    engagement_logit: float = -1.2
    unsubscribe_logit: float = -6.9
    organic_conversion_rate: float = 0.002
    conversion_lift: float = 0.003
    activity_logit: float = -1.3
    activity_effect: float = 0.03
    long_term_strength: float = 0.0

    def __post_init__(self) -> None:
        try:
            date.fromisoformat(self.start_date)
        except (TypeError, ValueError) as error:
            raise _bad("start_date", f"must be an ISO date like 2024-03-04, got {self.start_date!r}") from error
        if self.n_messages < 4:
            raise _bad("n_messages", f"must be >= 4 (one per message type), got {self.n_messages}")
        if not 1 <= self.live_messages <= self.n_messages:
            raise _bad("live_messages", f"must be in [1, n_messages={self.n_messages}], got {self.live_messages}")
        _check_hours(self.hours)
        for name in ("task_correlation", "exploration"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise _bad(name, f"must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.none_share < 1.0:
            raise _bad("none_share", f"must be in (0, 1), got {self.none_share}")
        for name in ("policy_temperature", "organic_conversion_rate", "conversion_lift"):
            if not getattr(self, name) > 0:
                raise _bad(name, f"must be > 0, got {getattr(self, name)}")
        for name in ("fatigue_strength", "activity_effect", "long_term_strength"):
            if not getattr(self, name) >= 0:
                raise _bad(name, f"must be >= 0, got {getattr(self, name)}")
        for name in ("engagement_logit", "unsubscribe_logit", "activity_logit"):
            if not math.isfinite(getattr(self, name)):
                raise _bad(name, f"must be finite, got {getattr(self, name)}")
        if not self.policy_id:
            raise _bad("policy_id", "must be a non-empty string")


def _bad(field: str, problem: str) -> InputError:
    return InputError(f"world config field '{field}' {problem}")


def _check_hours(hours: tuple[int, ...]) -> None:
    hours = tuple(hours)
    if not hours or any(not isinstance(h, int) or not 0 <= h <= 23 for h in hours):
        raise _bad("hours", f"must be a non-empty list of integers in 0..23, got {list(hours)}")
    gaps = [b - a for a, b in zip(hours, hours[1:], strict=False)] + [24 - hours[-1] + hours[0]]
    # Slots of different days must be >= 3 h apart, so an unsubscribe (< 1 h) precedes the next send.
    if any(g <= 0 for g in gaps[:-1]) or gaps[-1] < MIN_HOUR_GAP:
        raise _bad("hours", f"must be ascending and the last slot {MIN_HOUR_GAP}+ h before the next day's first")
