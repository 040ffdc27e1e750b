"""The message catalog (templates with observed features and latent per-task quality) and its schedule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mtr.sim.config import LATENT_ORDER, MESSAGE_TYPES, TOPICS, WorldConfig
from mtr.sim.population import CHANNEL_NAMES, DAY_US, mix_tasks

QUALITY_SD = 0.3  # spread of a template's latent quality per task
DISCOUNT_RATE = np.array([0.6, 0.05, 0.0, 0.1])  # chance of a discount, per message type


@dataclass(frozen=True)
class Catalog:
    """M message templates and which are live on each opportunity day.

    Attributes:
        message_id: [M] int64, 1..M.
        message_type: [M] codes into `MESSAGE_TYPES`.
        topic: [M] codes into `TOPICS`.
        has_discount: [M] bool.
        headline_length: [M] int32 characters.
        allowed: [M, 3] bool, channels the template may use (push, email, in_app).
        quality: [M, 4] latent per-objective quality (order `LATENT_ORDER`), mixed by the task correlation.
        live: [days, M] bool, the campaign schedule.
    """

    message_id: np.ndarray
    message_type: np.ndarray
    topic: np.ndarray
    has_discount: np.ndarray
    headline_length: np.ndarray
    allowed: np.ndarray
    quality: np.ndarray
    live: np.ndarray

    def actions(self, day: int, hours: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The send actions of a day: every live template x allowed channel x hour slot.

        Returns:
            (message index [A], channel index [A], hour [A]), ordered by message, channel, hour.
        """
        usable = self.live[day][:, None] & self.allowed  # [M, 3]
        message, channel = np.nonzero(usable)
        n_hours = len(hours)
        return np.repeat(message, n_hours), np.repeat(channel, n_hours), np.tile(np.asarray(hours), len(message))

    def messages_frame(self) -> pl.DataFrame:
        """The observed `messages` table of the event-log contract."""
        channels = [[CHANNEL_NAMES[c] for c in np.nonzero(row)[0]] for row in self.allowed]
        return pl.DataFrame(
            {
                "message_id": pl.Series(self.message_id, dtype=pl.Int64),
                "message_type": np.array(MESSAGE_TYPES)[self.message_type],
                "topic": np.array(TOPICS)[self.topic],
                "has_discount": self.has_discount,
                "headline_length": pl.Series(self.headline_length, dtype=pl.Int32),
                "channels": pl.Series(channels, dtype=pl.List(pl.String)),
            }
        )

    def quality_frame(self) -> pl.DataFrame:
        """Latent per-task quality (`truth/messages.parquet`)."""
        return pl.DataFrame(
            {"message_id": self.message_id, **{f"quality_{t}": self.quality[:, k] for k, t in enumerate(LATENT_ORDER)}}
        )

    def schedule_frame(self, start_us: int) -> pl.DataFrame:
        """The campaign schedule as (date, message_id) rows (`truth/live_messages.parquet`)."""
        day, message = np.nonzero(self.live)
        dates = (start_us // DAY_US + day).astype(np.int32)
        return pl.DataFrame(
            {"date": pl.Series(dates, dtype=pl.Int32).cast(pl.Date), "message_id": self.message_id[message]}
        )

    @classmethod
    def from_frames(
        cls, messages: pl.DataFrame, quality: pl.DataFrame, schedule: pl.DataFrame, start_us: int, days: int
    ) -> Catalog:
        """Rebuild a catalog from the `messages` table and the truth files (message ids must be 1..M)."""
        messages = messages.sort("message_id")
        quality = quality.sort("message_id")
        allowed = np.stack([messages["channels"].list.contains(c).to_numpy() for c in CHANNEL_NAMES], 1)
        day = schedule["date"].cast(pl.Int32).to_numpy() - start_us // DAY_US
        live = np.zeros((days, messages.height), dtype=bool)
        live[day, schedule["message_id"].to_numpy() - 1] = True
        return cls(
            message_id=messages["message_id"].to_numpy(),
            message_type=messages["message_type"].replace_strict(list(MESSAGE_TYPES), list(range(4))).to_numpy(),
            topic=messages["topic"].replace_strict(list(TOPICS), list(range(len(TOPICS)))).to_numpy(),
            has_discount=messages["has_discount"].to_numpy(),
            headline_length=messages["headline_length"].to_numpy(),
            allowed=allowed,
            quality=np.stack([quality[f"quality_{t}"].to_numpy() for t in LATENT_ORDER], 1),
            live=live,
        )


def make_catalog(rng: np.random.Generator, world: WorldConfig, days: int) -> Catalog:
    """Draw the templates and a campaign schedule with about `world.live_messages` live per day."""
    m = world.n_messages
    message_type = np.arange(m) % len(MESSAGE_TYPES)  # every type present
    topic = rng.integers(0, len(TOPICS), m)
    has_discount = rng.random(m) < DISCOUNT_RATE[message_type]
    headline_length = rng.integers(20, 91, m).astype(np.int32)
    allowed = rng.random((m, 3)) < 0.65
    lonely = ~allowed.any(1)
    allowed[lonely, rng.integers(0, 3, m)[lonely]] = True
    shared, specific = rng.normal(0.0, QUALITY_SD, (m, 1)), rng.normal(0.0, QUALITY_SD, (m, 4))
    quality = mix_tasks(world.task_correlation, shared, specific)
    # Campaigns recur: live for `length` days out of every `period`, at a random phase.
    duty = world.live_messages / m
    length = rng.integers(5, 15, m)
    period = np.maximum(length, np.round(length / duty)).astype(int)
    phase = rng.integers(0, 10_000, m)
    live = ((np.arange(days)[:, None] + phase) % period) < length  # [days, M]
    empty = ~live.any(1)
    live[np.nonzero(empty)[0], np.nonzero(empty)[0] % m] = True  # never a day without any message
    return Catalog(
        message_id=np.arange(1, m + 1, dtype=np.int64),
        message_type=message_type,
        topic=topic,
        has_discount=has_discount,
        headline_length=headline_length,
        allowed=allowed,
        quality=quality,
        live=live,
    )
