"""A small event log from an imaginary *foreign* messaging platform, written independently of `mtr.sim`.

Why it exists: mtr's pipeline must work on a platform it was not written around. This world has its own
user and message attributes (language, device_class, subscription_tier, account_age_months; campaign,
creative_id, body_words), its own context column (app_version), its own logging policy and its own outcome
model, and it writes the raw event-log contract plus the logging policy's full candidate table.

The world, in short:
- Users: 20% sign up inside the window. Decisions at 07:00 and 15:00 UTC every day after signup, through
  the last day. Messages are localized: a message is offered only to users of its languages.
- Logging policy ("foreign_v1"): a softmax over a heuristic score of every eligible (message, channel,
  hour) plus a "send nothing" logit that rises with the user's sends of the last 7 days.
- Outcomes of a send: opens/clicks, a purchase within 7 days and an unsubscribe from the send's channel,
  driven by user attributes x campaign / channel / hour / app version (so a model has signal) and latent
  per-user traits (so it has noise). Purchases also happen organically on active days; activity rises
  after engagement and falls after unsubscribes and for users who churn.
- The extract starts mid-stream: a few engagements in the first 2 days belong to sends made before the
  window, whose opportunities are not in the log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

FEATURES_YAML: Path = Path(__file__).with_name("features.yaml")

TIMESTAMP = pl.Datetime("us", "UTC")
META_FILE = "meta.json"
LOG_START = datetime(2025, 3, 1, tzinfo=UTC)
POLICY_ID = "foreign_v1"

LANGUAGES = ("en", "de", "es", "pt", "ja")
LANGUAGE_SHARES = (0.4, 0.2, 0.15, 0.15, 0.1)
DEVICE_CLASSES = ("phone_low", "phone_high", "tablet", "desktop")
DEVICE_SHARES = (0.35, 0.3, 0.12, 0.23)
TIER_SHARES = (0.6, 0.3, 0.1)
CHANNELS = ("push", "email", "in_app")
NO_SEND = "none"
CAMPAIGNS = ("spring_sale", "weekly_digest", "onboarding", "winback", "feature_tour", "loyalty")
APP_VERSIONS = ("5.1", "5.2", "6.0")
HOUR_GRID = np.array([8, 12, 18, 21])
DECISION_HOURS = (7, 15)
N_MESSAGES = 25
ORPHAN_SENDS = 40
PRE_DAYS = 7  # days of send history before the window that the extract does not hold

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
NEVER = np.iinfo(np.int64).max

# --- The true outcome model (log-odds terms). ---
# device_class x channel: phones answer push, desktops email, tablets in-app.
DEVICE_CHANNEL = np.array(
    [[0.5, -0.4, 0.0], [0.3, -0.1, 0.3], [-0.2, 0.0, 0.6], [-0.7, 0.6, -0.1]],
)
# language x send hour (UTC): the language stands in for the user's time zone.
LANGUAGE_HOUR = np.array(
    [
        [-0.8, 0.0, 0.4, 0.5],
        [0.2, 0.1, 0.5, -0.2],
        [0.0, 0.1, 0.2, 0.5],
        [-0.5, 0.1, 0.4, 0.4],
        [0.4, 0.6, -0.9, -0.4],
    ]
)
# subscription_tier x campaign: free users buy on sales, top-tier users on loyalty offers.
TIER_CAMPAIGN = np.array(
    [
        [0.6, 0.0, 0.3, 0.2, -0.2, -0.6],
        [0.2, 0.3, -0.2, 0.0, 0.3, 0.2],
        [-0.5, 0.4, -0.5, -0.3, 0.2, 0.8],
    ]
)
ENGAGE_BASE = np.array([-2.6, -2.8, -2.7])
CONVERT_BASE = -6.0
UNSUBSCRIBE_BASE = np.array([-5.0, -5.3, -5.3])
ORGANIC_BASE = -5.0

# --- The logging policy's heuristic (partly informed: half the device effect, none of the rest). ---
POLICY_CAMPAIGN = np.array([0.5, 0.2, 0.3, 0.0, -0.1, 0.1])
POLICY_CHANNEL = np.array([0.3, 0.2, 0.0])
POLICY_HOUR = np.array([0.0, -0.1, 0.3, 0.2])
NONE_BIAS = 0.25
FATIGUE = 0.1


def write_foreign_log(folder: Path, users: int = 300, days: int = 35, seed: int = 0) -> Path:
    """Write the foreign platform's event log (`{table}.parquet` + meta.json, plus `candidates.parquet`).

    `folder` is created; it must not exist or be empty, so that a stale log is never mixed in. Returns folder.
    """
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in generate_foreign_log(users, days, seed).items():
        frame.write_parquet(folder / f"{name}.parquet")
    log_end = LOG_START + timedelta(days=days)
    meta = {"log_start": LOG_START.isoformat(), "log_end": log_end.isoformat()}
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def generate_foreign_log(users: int = 300, days: int = 35, seed: int = 0) -> dict[str, pl.DataFrame]:
    """Every table of the log as a frame (the same frames `write_foreign_log` writes), deterministic in seed."""
    if users < 1 or days < 1:
        raise ValueError(f"users and days must be positive, got users={users}, days={days}")
    rng = np.random.default_rng(seed)
    start = int(LOG_START.timestamp()) * 1_000_000
    catalog = _catalog(rng, start, days)
    people = _users(rng, users, start, days)
    world = _World(rng, catalog, people, start, days)
    for day in range(days):
        world.run_day(day)
    return world.tables()


@dataclass(frozen=True)
class _Catalog:
    """The message templates; `languages` (M x L) localizes them and `quality` is a latent creative effect."""

    ids: np.ndarray
    channels: np.ndarray  # M x C bool
    campaign: np.ndarray
    creative: np.ndarray
    body_words: np.ndarray
    launched: np.ndarray  # microseconds
    languages: np.ndarray  # M x L bool
    quality: np.ndarray
    policy_bias: np.ndarray


@dataclass(frozen=True)
class _Users:
    """Observed attributes and latent traits (engage, convert, activity level, churn day) of every user."""

    ids: np.ndarray
    signup: np.ndarray  # microseconds
    language: np.ndarray
    device: np.ndarray
    tier: np.ndarray
    age_months: np.ndarray
    engage: np.ndarray
    convert: np.ndarray
    activity: np.ndarray
    churn_day: np.ndarray
    sessions: np.ndarray
    upgrade_52: np.ndarray  # day of the upgrade to 5.2 (<= 0: already on it)
    upgrade_60: np.ndarray  # day of the upgrade to 6.0


def _catalog(rng: np.random.Generator, start: int, days: int) -> _Catalog:
    """25 templates over 6 campaigns; each allows 1-3 channels and ~30% launch inside the window."""
    m = N_MESSAGES
    n_channels = rng.choice([1, 2, 3], m, p=[0.3, 0.45, 0.25])
    channels = np.zeros((m, len(CHANNELS)), dtype=bool)
    for i, k in enumerate(n_channels):
        channels[i, rng.choice(len(CHANNELS), k, replace=False)] = True
    channels[np.arange(len(CHANNELS)), np.arange(len(CHANNELS))] = True  # every channel has templates
    languages = rng.random((m, len(LANGUAGES))) < 0.15
    languages[np.arange(m), np.arange(m) % len(LANGUAGES)] = True
    late = rng.permutation(m)[: round(0.3 * m)]
    launched = start - rng.integers(1, 60, m) * US_PER_DAY
    span = max(days - 6, 1)
    launched[late] = (
        start + (2 + rng.integers(0, span, late.size)) * US_PER_DAY + rng.integers(0, 24, late.size) * US_PER_HOUR
    )
    email_only = channels[:, 1] & ~channels[:, 0] & ~channels[:, 2]
    body = np.where(email_only, rng.integers(120, 400, m), rng.integers(8, 160, m)).astype(np.int32)
    creative = 7000 + rng.integers(0, 14, m)
    quality_of_creative = rng.normal(0.0, 0.4, 14)
    return _Catalog(
        ids=np.arange(501, 501 + m, dtype=np.int64),
        channels=channels,
        campaign=np.arange(m) % len(CAMPAIGNS),
        creative=creative.astype(np.int64),
        body_words=body,
        launched=launched,
        languages=languages,
        quality=quality_of_creative[creative - 7000],
        policy_bias=rng.normal(0.0, 0.3, m),
    )


def _users(rng: np.random.Generator, n: int, start: int, days: int) -> _Users:
    """Users; 20% sign up inside the window (at least 4 days before its end)."""
    end = start + days * US_PER_DAY
    months = rng.exponential(14.0, n) + 0.2
    signup = start - (months * 30.44 * US_PER_DAY).astype(np.int64)
    late = rng.random(n) < 0.2
    late_span = max((days - 4) * US_PER_DAY, US_PER_DAY)
    signup[late] = start + rng.integers(US_PER_HOUR, late_span, late.sum())
    churns = rng.random(n) < 0.35
    return _Users(
        ids=np.arange(10_001, 10_001 + n, dtype=np.int64),
        signup=signup,
        language=rng.choice(len(LANGUAGES), n, p=LANGUAGE_SHARES),
        device=rng.choice(len(DEVICE_CLASSES), n, p=DEVICE_SHARES),
        tier=rng.choice(3, n, p=TIER_SHARES),
        age_months=(end - signup) / (30.44 * US_PER_DAY),  # account age at the extract (log_end)
        engage=rng.normal(0.0, 0.5, n),
        convert=rng.normal(0.0, 0.5, n),
        activity=rng.normal(-0.4, 1.0, n),
        churn_day=np.where(churns, rng.uniform(0.0, days * 1.6, n), np.inf),
        sessions=rng.gamma(2.0, 0.8, n),
        upgrade_52=np.where(rng.random(n) < 0.5, -1.0, rng.exponential(8.0, n)),
        upgrade_60=10.0 + rng.exponential(9.0, n),
    )


@dataclass(frozen=True)
class _Sends:
    """One batch of sends (indices into the users / catalog / grids) with their opportunity ids and send times."""

    user: np.ndarray
    opportunity: np.ndarray
    message: np.ndarray
    channel: np.ndarray
    hour: np.ndarray
    send: np.ndarray  # microseconds
    version: np.ndarray  # app version index at the decision

    def take(self, keep: np.ndarray) -> _Sends:
        return _Sends(*(getattr(self, f.name)[keep] for f in fields(self)))

    def join(self, other: _Sends) -> _Sends:
        return _Sends(*(np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)))


class _World:
    """The day-by-day loop: activity, the two decisions, and the outcomes of each send, in time order.

    Unsubscribes are placed before the user's next decision and never while a later send on the same channel
    is already scheduled, so no send or candidate ever uses a channel after the user left it.
    """

    def __init__(self, rng: np.random.Generator, catalog: _Catalog, users: _Users, start: int, days: int) -> None:
        self.rng, self.catalog, self.users, self.start, self.days = rng, catalog, users, start, days
        self.end = start + days * US_PER_DAY
        n = users.ids.size
        self.unsubscribed = np.full((n, len(CHANNELS)), NEVER, dtype=np.int64)
        # Sends per user and day, from PRE_DAYS before the window: the extract starts mid-stream, so veterans
        # arrive with a recent send volume (it drives fatigue and opt-outs) that the log itself does not show.
        self.sends_per_day = np.zeros((n, PRE_DAYS + days), dtype=np.int64)
        before = start - np.arange(PRE_DAYS, 0, -1) * US_PER_DAY
        self.sends_per_day[:, :PRE_DAYS] = rng.poisson(0.6, (n, PRE_DAYS)) * (users.signup[:, None] < before)
        self.engaged_per_day = np.zeros((n, days + 3), dtype=np.int64)
        self.active_today = np.zeros(n, dtype=bool)
        self.next_opportunity = 1
        self.parts: dict[str, list[dict[str, np.ndarray]]] = {
            k: [] for k in ("opportunities", "candidates", "engagements", "conversions", "unsubscribes", "activity")
        }

    # ----- one day -----
    def run_day(self, day: int) -> None:
        """Activity and organic purchases, then the 07:00 and 15:00 decisions and their sends' outcomes."""
        day_start = self.start + day * US_PER_DAY
        self._activity(day, day_start)
        morning = self._decide(day, day_start, 0)
        self._outcomes(morning)
        early = HOUR_GRID[morning.hour] < DECISION_HOURS[1]  # sent before the afternoon decision
        self._unsubscribes(morning.take(early), day, day_start + DECISION_HOURS[1] * US_PER_HOUR)
        afternoon = self._decide(day, day_start, 1)
        self._outcomes(afternoon)
        next_morning = day_start + US_PER_DAY + DECISION_HOURS[0] * US_PER_HOUR
        self._unsubscribes(morning.take(~early).join(afternoon), day, next_morning)

    def _activity(self, day: int, day_start: int) -> None:
        """Who is active today (more after engagement, less after unsubscribes and churn) and organic purchases."""
        u, rng = self.users, self.rng
        alive = u.signup < day_start + US_PER_DAY
        engaged = self.engaged_per_day[:, max(day - 3, 0) : day].sum(axis=1) > 0
        left = (self.unsubscribed < day_start).sum(axis=1)
        logit = u.activity + 1.0 * engaged - 0.7 * left - 3.0 * (day >= u.churn_day)
        active = alive & (rng.random(u.ids.size) < _sigmoid(logit))
        self.active_today = active
        who = np.flatnonzero(active)
        sessions = 1 + rng.poisson(u.sessions[who])
        self.parts["activity"].append(
            {"user": who, "day": np.full(who.size, day), "sessions": sessions.astype(np.int32)}
        )
        buys = who[rng.random(who.size) < _sigmoid(ORGANIC_BASE + 0.5 * u.tier[who] + u.convert[who])]
        earliest = np.maximum(u.signup[buys] + 1, day_start)
        ts = earliest + (rng.random(buys.size) * (day_start + US_PER_DAY - earliest)).astype(np.int64)
        self._purchases(buys, ts)

    def _decide(self, day: int, day_start: int, slot: int) -> _Sends:
        """One decision for every signed-up user: its candidates, propensities and the sampled action."""
        u, c, rng = self.users, self.catalog, self.rng
        ts = day_start + DECISION_HOURS[slot] * US_PER_HOUR
        who = np.flatnonzero(u.signup < ts)
        n, m, k, h = who.size, c.ids.size, len(CHANNELS), HOUR_GRID.size
        eligible = (
            c.languages[:, u.language[who]].T[:, :, None, None]
            & (c.launched <= ts)[None, :, None, None]
            & c.channels[None, :, :, None]
            & (self.unsubscribed[who] >= ts)[:, None, :, None]
            & (HOUR_GRID > DECISION_HOURS[slot])[None, None, None, :]
        ).reshape(n, m * k * h)
        score = (
            POLICY_CAMPAIGN[c.campaign][None, :, None, None]
            + c.policy_bias[None, :, None, None]
            + POLICY_CHANNEL[None, None, :, None]
            + POLICY_HOUR[None, None, None, :]
            + 0.5 * DEVICE_CHANNEL[u.device[who]][:, None, :, None]
        )
        score = np.broadcast_to(score, (n, m, k, h)).reshape(n, m * k * h)
        logits = np.where(eligible, score, -np.inf)
        top = logits.max(axis=1, initial=-np.inf)
        any_send = np.isfinite(top)
        shift = np.where(any_send, top, 0.0)
        mass = np.exp(logits - shift[:, None]).sum(axis=1)
        recent = self._recent_sends(who, day)
        none_logit = np.where(any_send, shift + np.log(np.where(any_send, mass, 1.0)), 0.0)
        none_logit = none_logit + NONE_BIAS + FATIGUE * recent
        logits = np.concatenate([logits, none_logit[:, None]], axis=1)
        eligible = np.concatenate([eligible, np.ones((n, 1), dtype=bool)], axis=1)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        propensity = weights / weights.sum(axis=1, keepdims=True)
        cumulative = np.cumsum(propensity, axis=1)
        draw = rng.random(n)[:, None] * cumulative[:, -1:]
        taken = np.minimum((cumulative <= draw).sum(axis=1), m * k * h)
        taken = np.where(propensity[np.arange(n), taken] > 0, taken, m * k * h)  # guard rounding at the edges
        ids = self.next_opportunity + np.arange(n, dtype=np.int64)
        self.next_opportunity += n
        row, col = np.nonzero(eligible)
        self.parts["candidates"].append({"opportunity": ids[row], "action": col, "propensity": propensity[row, col]})
        version = np.where(day >= u.upgrade_60[who], 2, np.where(day >= u.upgrade_52[who], 1, 0))
        self.parts["opportunities"].append(
            {
                "opportunity": ids,
                "user": who,
                "ts": np.full(n, ts, dtype=np.int64),
                "action": taken,
                "propensity": propensity[np.arange(n), taken],
                "version": version,
            }
        )
        sent = taken < m * k * h
        action = taken[sent]
        hour = action % h
        sends = _Sends(
            user=who[sent],
            opportunity=ids[sent],
            message=action // (k * h),
            channel=(action // h) % k,
            hour=hour,
            send=day_start + HOUR_GRID[hour] * US_PER_HOUR,
            version=version[sent],
        )
        np.add.at(self.sends_per_day, (sends.user, PRE_DAYS + day), 1)
        return sends

    def _outcomes(self, sends: _Sends) -> None:
        """Opens and clicks, then purchases (likelier after an open) of one batch of sends."""
        u, c, rng = self.users, self.catalog, self.rng
        who, msg, ch, hr = sends.user, sends.message, sends.channel, sends.hour
        fit = DEVICE_CHANNEL[u.device[who], ch] + LANGUAGE_HOUR[u.language[who], hr]
        taste = TIER_CAMPAIGN[u.tier[who], c.campaign[msg]]
        new_app = sends.version == 2
        engage = (
            ENGAGE_BASE[ch]
            + fit
            + 0.4 * taste
            + c.quality[msg]
            + u.engage[who]
            + 0.6 * self.active_today[who]
            + 0.6 * ((ch == 2) & new_app)
            - 0.006 * (ch == 0) * (c.body_words[msg] - 40)
        )
        opened = rng.random(who.size) < _sigmoid(engage)
        open_ts = sends.send[opened] + (rng.exponential(1.5, opened.sum()) * US_PER_HOUR).astype(np.int64) + 1
        clicked = rng.random(open_ts.size) < 0.35
        click_ts = open_ts[clicked] + (rng.exponential(0.1, clicked.sum()) * US_PER_HOUR).astype(np.int64) + 1
        idx = np.flatnonzero(opened)
        for kind, rows, ts in (("open", idx, open_ts), ("click", idx[clicked], click_ts)):
            self.parts["engagements"].append(
                {"opportunity": sends.opportunity[rows], "user": who[rows], "channel": ch[rows], "ts": ts, "kind": kind}
            )
        day_of = np.minimum((open_ts - self.start) // US_PER_DAY, self.days + 2)
        np.add.at(self.engaged_per_day, (who[opened], day_of), 1)
        convert = (
            CONVERT_BASE
            + 1.3 * taste
            + 0.5 * fit
            + 1.6 * opened
            + 0.15 * np.log1p(u.age_months[who])
            + u.convert[who]
            + 0.2 * c.quality[msg]
        )
        bought = rng.random(who.size) < _sigmoid(convert)
        delay = np.minimum(rng.exponential(20.0, bought.sum()), 7 * 24 - 1) * US_PER_HOUR
        self._purchases(who[bought], sends.send[bought] + delay.astype(np.int64) + 1)

    def _unsubscribes(self, sends: _Sends, day: int, next_decision: int) -> None:
        """Opt-outs of a send's channel, before `next_decision` and only from a user's last scheduled send there.

        A send followed by a later scheduled send on the same channel cannot cause one (the later send would
        then go to a channel the user has left); its risk is carried by the later send's recent-volume term.
        """
        u, rng = self.users, self.rng
        order = np.lexsort((sends.send, sends.channel, sends.user))
        s = sends.take(order)
        same_next = np.zeros(s.user.size, dtype=bool)
        same_next[:-1] = (s.user[:-1] == s.user[1:]) & (s.channel[:-1] == s.channel[1:]) & (s.send[:-1] < s.send[1:])
        recent = self._recent_sends(s.user, day)
        logit = UNSUBSCRIBE_BASE[s.channel] + 0.12 * recent + 0.3 * ((u.device[s.user] == 0) & (s.channel == 0))
        leave = ~same_next & (rng.random(s.user.size) < _sigmoid(logit))
        room = np.minimum(next_decision, self.end) - s.send[leave] - 1
        ts = s.send[leave] + np.minimum((rng.exponential(2.0, leave.sum()) * US_PER_HOUR).astype(np.int64), room)
        ok = room > 0
        who, ch, ts = s.user[leave][ok], s.channel[leave][ok], ts[ok]
        first = np.ones(who.size, dtype=bool)  # two same-instant sends on one channel: one opt-out
        seen: set[tuple[int, int]] = set()
        for i, key in enumerate(zip(who.tolist(), ch.tolist(), strict=True)):
            first[i] = key not in seen and self.unsubscribed[key[0], key[1]] == NEVER
            seen.add(key)
        who, ch, ts = who[first], ch[first], ts[first]
        self.unsubscribed[who, ch] = ts
        self.parts["unsubscribes"].append({"user": who, "channel": ch, "ts": ts})

    def _recent_sends(self, who: np.ndarray, day: int) -> np.ndarray:
        """Sends to each user in the 7 days ending with `day` (today's so far included)."""
        return self.sends_per_day[who, PRE_DAYS + day - 6 : PRE_DAYS + day + 1].sum(axis=1)

    def _purchases(self, who: np.ndarray, ts: np.ndarray) -> None:
        value = np.exp(self.rng.normal(np.log(20.0) + 0.4 * self.users.tier[who], 0.6))
        self.parts["conversions"].append({"user": who, "ts": ts, "value": value})

    # ----- the tables -----
    def tables(self) -> dict[str, pl.DataFrame]:
        """Assemble every table; events at or after log_end are outside the window and dropped."""
        u, c = self.users, self.catalog
        p = {name: _concat(parts) for name, parts in self.parts.items()}
        k, h = len(CHANNELS), HOUR_GRID.size
        none_action = c.ids.size * k * h

        def action_columns(action: np.ndarray) -> dict[str, pl.Series]:
            send = action < none_action
            return {
                "message_id": _nullable(c.ids[action // (k * h) % c.ids.size], send),
                "channel": pl.Series(np.array([*CHANNELS, NO_SEND])[np.where(send, (action // h) % k, k)]),
                "hour": _nullable(HOUR_GRID[action % h].astype(np.int32), send),
            }

        users = pl.DataFrame(
            {
                "user_id": u.ids,
                "signup_ts": _timestamps(u.signup),
                "language": np.array(LANGUAGES)[u.language],
                "device_class": np.array(DEVICE_CLASSES)[u.device],
                "subscription_tier": u.tier.astype(np.int64),
                "account_age_months": u.age_months.astype(np.float64),
            }
        )
        messages = pl.DataFrame(
            {
                "message_id": c.ids,
                "channels": [[CHANNELS[j] for j in np.flatnonzero(row)] for row in c.channels],
                "campaign": np.array(CAMPAIGNS)[c.campaign],
                "creative_id": c.creative,
                "body_words": c.body_words,
                "launched_ts": _timestamps(c.launched),
            },
            schema_overrides={"channels": pl.List(pl.String)},
        )
        o = p["opportunities"]
        actions = action_columns(o["action"])
        send = o["action"] < none_action
        send_ts = o["ts"] - o["ts"] % US_PER_DAY + HOUR_GRID[o["action"] % h] * US_PER_HOUR
        opportunities = pl.DataFrame(
            {
                "opportunity_id": o["opportunity"].astype(np.int64),
                "user_id": u.ids[o["user"]],
                "ts": _timestamps(o["ts"]),
                "policy_id": np.full(o["ts"].size, POLICY_ID),
                **actions,
                "send_ts": _nullable(send_ts, send).cast(TIMESTAMP),
                "propensity": o["propensity"],
                "app_version": np.array(APP_VERSIONS)[o["version"]],
            }
        )
        cand = p["candidates"]
        candidates = pl.DataFrame(
            {
                "opportunity_id": cand["opportunity"].astype(np.int64),
                **action_columns(cand["action"]),
                "propensity": cand["propensity"],
            }
        )
        e = p["engagements"]
        engagements = pl.concat(
            [
                pl.DataFrame(
                    {
                        "opportunity_id": e["opportunity"].astype(np.int64),
                        "user_id": u.ids[e["user"]],
                        "channel": np.array(CHANNELS)[e["channel"]],
                        "ts": _timestamps(e["ts"]),
                        "kind": e["kind"],
                    }
                ),
                self._orphan_engagements(),
            ]
        )
        conv, uns, act = p["conversions"], p["unsubscribes"], p["activity"]
        conversions = pl.DataFrame(
            {"user_id": u.ids[conv["user"]], "ts": _timestamps(conv["ts"]), "value": conv["value"]}
        )
        unsubscribes = pl.DataFrame(
            {"user_id": u.ids[uns["user"]], "channel": np.array(CHANNELS)[uns["channel"]], "ts": _timestamps(uns["ts"])}
        )
        start_day = self.start // US_PER_DAY
        activity = pl.DataFrame(
            {
                "user_id": u.ids[act["user"]],
                "date": pl.Series((start_day + act["day"]).astype(np.int32)).cast(pl.Date),
                "sessions": act["sessions"].astype(np.int32),
            }
        )
        end = pl.lit(self.end).cast(TIMESTAMP)
        return {
            "users": users,
            "messages": messages,
            "opportunities": opportunities.sort("opportunity_id"),
            "candidates": candidates.sort("opportunity_id", "channel", "message_id", "hour", nulls_last=True),
            "engagements": engagements.filter(pl.col("ts") < end).sort("ts", "opportunity_id", "kind"),
            "conversions": conversions.filter(pl.col("ts") < end).sort("ts", "user_id", "value"),
            "unsubscribes": unsubscribes.filter(pl.col("ts") < end).sort("ts", "user_id", "channel"),
            "activity": activity.sort("date", "user_id"),
        }

    def _orphan_engagements(self) -> pl.DataFrame:
        """Opens (and some clicks) in the first 2 days of sends made before the window: ids -1, -2, ..."""
        rng, u = self.rng, self.users
        veterans = np.flatnonzero(u.signup < self.start)
        n = ORPHAN_SENDS if veterans.size else 0
        who = rng.choice(veterans, n) if n else veterans
        ids = -np.arange(1, n + 1, dtype=np.int64)
        channel = rng.integers(0, len(CHANNELS), n)
        window = min(2 * US_PER_DAY, self.end - self.start) - US_PER_HOUR
        opened = self.start + rng.integers(0, window, n)
        clicked = rng.random(n) < 0.3
        click_ts = opened[clicked] + rng.integers(1, 30 * 60_000_000, clicked.sum())
        return pl.DataFrame(
            {
                "opportunity_id": np.concatenate([ids, ids[clicked]]),
                "user_id": u.ids[np.concatenate([who, who[clicked]])],
                "channel": np.array(CHANNELS)[np.concatenate([channel, channel[clicked]])],
                "ts": _timestamps(np.concatenate([opened, click_ts])),
                "kind": np.array(["open"] * n + ["click"] * int(clicked.sum()), dtype=str),
            }
        )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _nullable(values: np.ndarray, present: np.ndarray) -> pl.Series:
    """`values` with nulls where `present` is False (the "send nothing" action has no message, hour or time)."""
    return pl.DataFrame({"v": values, "p": present}).select(pl.when("p").then("v")).to_series()


def _timestamps(us: np.ndarray) -> pl.Series:
    return pl.Series(np.asarray(us, dtype=np.int64)).cast(TIMESTAMP)


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Column-wise concatenation of the loop's batches (scalars such as a batch's `kind` are repeated)."""
    columns: dict[str, list[np.ndarray]] = {}
    for part in parts:
        size = next(np.size(v) for v in part.values() if not isinstance(v, str))
        for name, value in part.items():
            columns.setdefault(name, []).append(np.full(size, value) if isinstance(value, str) else np.asarray(value))
    return {name: np.concatenate(values) for name, values in columns.items()}
