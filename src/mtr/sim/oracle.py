"""The oracle: true label probabilities of any action at any opportunity of a simulated log.

    oracle = Oracle.load("demo/events")
    candidates = oracle.eligible_actions()            # every eligible action, with the policy's probability
    truth = oracle.probabilities(candidates)          # + p_conversion, p_engagement, p_retention, p_unsubscribe

It rebuilds the simulator's state from the written files (the event tables, `truth/` and meta.json)
and evaluates actions with the same `WorldTruth` the simulator drew the log from, so for the logged
actions it returns `truth/logged_probabilities.parquet` exactly. A counterfactual action changes only
its own row: every other decision of the log is held fixed (its fatigue counts, the next send that
closes the conversion window, and the activity effects of other sends).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mtr.errors import InputError
from mtr.events import META_FILE
from mtr.schema import NO_SEND
from mtr.sim.catalog import Catalog
from mtr.sim.config import PLATFORMS, WorldConfig
from mtr.sim.history import NEVER, SendHistory, eligible_mask
from mtr.sim.history import NO_SEND as NO_ACTION
from mtr.sim.logging_policy import decide
from mtr.sim.population import CHANNEL_NAMES, DAY_US, Population
from mtr.sim.truth import WorldTruth
from mtr.sim.writer import TRUTH_DIR


@dataclass(frozen=True)
class Oracle:
    """Ground truth of one simulated log.

    Attributes:
        truth: the outcome model bound to the logged history.
        unsubscribe_day: [U, 3] day each user left each channel (NEVER if not).
        opportunities: the opportunities table with `_user` and `_day` indices added.
        start_us: first opportunity day 00:00 UTC, epoch microseconds.
    """

    truth: WorldTruth
    unsubscribe_day: np.ndarray
    opportunities: pl.DataFrame
    start_us: int

    @classmethod
    def load(cls, events_dir: Path | str) -> Oracle:
        """Read a folder written by `mtr simulate`."""
        folder = Path(events_dir)
        meta = _read_meta(folder)
        config = meta["config"]
        world = WorldConfig(**{**config["world"], "hours": tuple(config["world"]["hours"])})
        days = int(config["days"])
        start_us = _epoch_us(meta["first_opportunity_ts"])
        users = Population.from_frames(_read(folder, "users"), _read(folder, f"{TRUTH_DIR}/user_traits"))
        catalog = Catalog.from_frames(
            _read(folder, "messages"),
            _read(folder, f"{TRUTH_DIR}/messages"),
            _read(folder, f"{TRUTH_DIR}/live_messages"),
            start_us,
            days,
        )
        opportunities = _index_opportunities(_read(folder, "opportunities"), users.user_id, start_us, days)
        history = _history(opportunities, len(users.user_id), days)
        unsubscribes = _read(folder, "unsubscribes")
        unsubscribe_day = np.full((len(users.user_id), 3), NEVER, dtype=np.int64)
        if unsubscribes.height:
            user = np.searchsorted(users.user_id, unsubscribes["user_id"].to_numpy())
            channel = _channel_codes(unsubscribes["channel"])
            day = (unsubscribes["ts"].dt.epoch("us").to_numpy() - start_us) // DAY_US
            np.minimum.at(unsubscribe_day, (user, channel), day)
        return cls(WorldTruth(world, users, catalog, history), unsubscribe_day, opportunities, start_us)

    def probabilities(self, actions: pl.DataFrame) -> pl.DataFrame:
        """True probabilities of actions taken at opportunities, the rest of the log held fixed.

        Args:
            actions: columns opportunity_id, message_id, channel, hour; channel "none" (message_id and
                hour null) means send nothing. Other columns are kept.

        Returns:
            `actions` plus p_{objective} in the objective table's order (p_conversion, p_engagement,
            p_retention, p_unsubscribe; engagement and unsubscribe null for "none") and `eligible`
            (whether the logging world allowed the action).
        """
        for column in ("opportunity_id", "message_id", "channel", "hour"):
            if column not in actions.columns:
                raise InputError(f"oracle actions: column '{column}' is missing (columns: {actions.columns})")
        user, day = self._locate(actions["opportunity_id"])
        is_send = (actions["channel"] != NO_SEND).to_numpy()
        message = self._message_codes(actions["message_id"], is_send)
        channel = np.where(is_send, _channel_codes(actions["channel"].replace(NO_SEND, CHANNEL_NAMES[0])), NO_ACTION)
        hour = actions["hour"].fill_null(NO_ACTION).to_numpy().astype(np.int64)
        if np.any(is_send & ~np.isin(hour, self.truth.world.hours)):
            raise InputError(f"oracle actions: column 'hour' must be one of {list(self.truth.world.hours)} on sends")
        p = self.truth.evaluate(user, day, message, channel, hour)
        eligible = ~is_send | self._eligible(user, day, np.maximum(message, 0), np.maximum(channel, 0), hour)
        return actions.with_columns(**p.columns(), eligible=pl.Series(eligible))

    def logged_actions(self) -> pl.DataFrame:
        """The logged opportunities (opportunity_id, user_id, ts, message_id, channel, hour, propensity)."""
        return self.opportunities.select(
            "opportunity_id", "user_id", "ts", "message_id", "channel", "hour", "propensity"
        )

    def eligible_actions(self, opportunity_ids: pl.Series | np.ndarray | None = None) -> pl.DataFrame:
        """Every action the logging world allowed at the given opportunities (all if None), "none" included.

        Returns:
            opportunity_id, message_id, channel, hour, propensity (the logging policy's probability),
            ordered by opportunity then action (none first).
        """
        rows = self.opportunities
        if opportunity_ids is not None:
            rows = rows.join(
                pl.DataFrame({"opportunity_id": pl.Series(opportunity_ids, dtype=pl.Int64)}), on="opportunity_id"
            )
        parts = []
        truth = self.truth
        for (day,), frame in rows.sort("_day", "opportunity_id").group_by("_day", maintain_order=True):
            users = frame["_user"].to_numpy()
            decision = decide(truth.world, truth.users, truth.catalog, truth.history, self.unsubscribe_day, users, day)
            row, column = np.nonzero(decision.probabilities > 0)
            send = column > 0
            action = np.maximum(column - 1, 0)
            parts.append(
                pl.DataFrame(
                    {
                        "opportunity_id": frame["opportunity_id"].to_numpy()[row],
                        "message_id": pl.Series(truth.catalog.message_id[decision.message[action]]),
                        "channel": np.where(send, np.array(CHANNEL_NAMES)[decision.channel[action]], NO_SEND),
                        "hour": pl.Series(decision.hour[action], dtype=pl.Int32),
                        "propensity": decision.probabilities[row, column],
                        "_send": send,
                    }
                )
            )
        frame = pl.concat(parts) if parts else pl.DataFrame()
        return frame.with_columns(pl.when("_send").then(pl.col(c)).alias(c) for c in ("message_id", "hour")).drop(
            "_send"
        )

    def _locate(self, opportunity_id: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        found = pl.DataFrame({"opportunity_id": opportunity_id.cast(pl.Int64)}).join(
            self.opportunities.select("opportunity_id", "_user", "_day"),
            on="opportunity_id",
            how="left",
            maintain_order="left",
        )
        missing = found.filter(pl.col("_user").is_null())
        if missing.height:
            first = missing["opportunity_id"][0]
            raise InputError(f"oracle actions: {missing.height} opportunity_id(s) not in the log (first: {first})")
        return found["_user"].to_numpy(), found["_day"].to_numpy()

    def _message_codes(self, message_id: pl.Series, is_send: np.ndarray) -> np.ndarray:
        ids = message_id.fill_null(-1).to_numpy()
        known = self.truth.catalog.message_id
        code = np.searchsorted(known, ids)
        valid = (code < len(known)) & (known[np.minimum(code, len(known) - 1)] == ids)
        if np.any(is_send & ~valid):
            raise InputError(
                f"oracle actions: column 'message_id' has unknown ids {np.unique(ids[is_send & ~valid])[:5]}"
            )
        return np.where(is_send, code, NO_ACTION)

    def _eligible(
        self, user: np.ndarray, day: np.ndarray, message: np.ndarray, channel: np.ndarray, hour: np.ndarray
    ) -> np.ndarray:
        """[N] whether each (opportunity, send action) was allowed: reachable channel, live template."""
        catalog = self.truth.catalog
        can_push = self.truth.users.platform[user] != PLATFORMS.index("web")
        reachable = eligible_mask(
            self.truth.history, user, day, can_push, self.unsubscribe_day[user], channel[:, None], hour[:, None]
        )[:, 0]
        return reachable & catalog.live[day, message] & catalog.allowed[message, channel]


def has_truth(events_dir: Path | str) -> bool:
    """Whether a folder is a simulation with its truth (a platform's own log has none)."""
    folder = Path(events_dir)
    try:
        meta = json.loads((folder / META_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    world = isinstance(meta, dict) and "world" in (meta.get("config") or {})
    return world and "first_opportunity_ts" in meta and (folder / TRUTH_DIR).is_dir()


def _read_meta(folder: Path) -> dict:
    path = folder / META_FILE
    if not path.exists():
        raise InputError(f"{META_FILE} not found in {folder}: the oracle needs a folder written by `mtr simulate`")
    meta = json.loads(path.read_text())
    if "config" not in meta or "world" not in meta["config"] or "first_opportunity_ts" not in meta:
        raise InputError(
            f"{path}: fields 'config.world' and 'first_opportunity_ts' are needed (written by mtr simulate)"
        )
    return meta


def _read(folder: Path, table: str) -> pl.DataFrame:
    path = folder / f"{table}.parquet"
    if not path.exists():
        raise InputError(f"table '{table}' not found: {path} (the oracle needs a folder written by `mtr simulate`)")
    return pl.read_parquet(path)


def _epoch_us(iso: str) -> int:
    return int(pl.Series([iso]).str.to_datetime(time_unit="us", time_zone="UTC").dt.epoch("us")[0])


def _channel_codes(channel: pl.Series) -> np.ndarray:
    unknown = ~channel.is_in(list(CHANNEL_NAMES))
    if unknown.any():
        raise InputError(f"column 'channel' has unknown channels {channel.filter(unknown).unique().to_list()[:5]}")
    return channel.replace_strict(list(CHANNEL_NAMES), list(range(3)), return_dtype=pl.Int64).to_numpy()


def _index_opportunities(opportunities: pl.DataFrame, user_ids: np.ndarray, start_us: int, days: int) -> pl.DataFrame:
    """Add `_user` (index into the population) and `_day`; the log must hold one row per user and day."""
    indexed = opportunities.with_columns(
        pl.Series("_user", np.searchsorted(user_ids, opportunities["user_id"].to_numpy())),
        ((pl.col("ts").dt.epoch("us") - start_us) // DAY_US).alias("_day"),
    )
    if (
        indexed.height != len(user_ids) * days
        or indexed.select(pl.struct("_user", "_day").n_unique()).item() != indexed.height
    ):
        raise InputError(
            "table 'opportunities' must hold exactly one decision per user and day (as mtr simulate writes)"
        )
    return indexed


def _history(opportunities: pl.DataFrame, n_users: int, days: int) -> SendHistory:
    history = SendHistory.empty(n_users, days)
    sends = opportunities.filter(pl.col("channel") != NO_SEND)
    user, day = sends["_user"].to_numpy(), sends["_day"].to_numpy()
    history.hour[user, day] = sends["hour"].to_numpy()
    history.channel[user, day] = _channel_codes(sends["channel"])
    history.message[user, day] = sends["message_id"].to_numpy() - 1
    return history
