"""The declared feature set: which columns of a platform's event log become model features, and how.

A platform's users, messages and decisions carry its own attributes (a language, a device class, a
campaign). `mtr build-dataset --features FILE` reads them from a YAML file of this form:

    users:          {sparse: [language, device_class], dense: {account_age_months: log1p}}
    messages:       {sparse: [campaign], hashed: {creative_id: 64}, dense: {body_words: identity}}
    opportunities:  {sparse: [app_version], dense: {}}        # decision-time context only, never outcomes
    history:
      windows_days: [7, 28]
      counts:
        - {table: sends, per_channel: true}                    # sends_{channel}_{W}d
        - {table: engagements, per_channel: true, recency: true}
        - {table: conversions, windows_days: [28]}             # conversions_28d
        - {table: activity}                                    # active_days_{W}d

Every dataset also has the action's features (message_id, channel, hour, day_of_week of the decision),
`subscribed_{channel}`, `tenure_days` and `history_days` (how much of the user's past the log covers at the
decision: a log that starts mid-stream has counts that are cut short, and the model should know it).
`SIMULATOR_FEATURES`, the set of `mtr simulate`'s logs, is the default; `schema.json` records the resolved
features with their source, so training and serving need nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from mtr.errors import InputError
from mtr.events import EVENT_TABLES
from mtr.schema import CHANNELS

Transform = Literal["identity", "log1p"]
AttributeTable = Literal["users", "messages", "opportunities"]
HistoryTable = Literal["sends", "engagements", "conversions", "activity"]
ATTRIBUTE_TABLES: tuple[str, ...] = get_args(AttributeTable)
HISTORY_TABLES: tuple[str, ...] = get_args(HistoryTable)

# Keys, times, actions and the dataset's own columns: never declared attributes, of any table (the tables are
# joined into one row per decision, where a users column named "propensity" would be the logging policy's).
RESERVED = frozenset(
    {
        *(column for table in ("users", "messages", "opportunities") for column in EVENT_TABLES[table]),
        "launched_ts",
        "row_id",
        "action",
        "split",
        "conversion_value",
    }
)
# The features every event-log dataset has, whatever its config: the action and the user's standing.
ACTION_SPARSE = ("message_id", "channel", "hour", "day_of_week")
SUBSCRIBED = tuple(f"subscribed_{c}" for c in CHANNELS)
STANDING_DENSE: dict[str, Transform] = {"tenure_days": "log1p", "history_days": "identity"}
# A history count's name stem: sends_push_7d, engagements_7d, conversions_28d, active_days_7d.
COUNT_STEM = {"sends": "sends", "engagements": "engagements", "conversions": "conversions", "activity": "active_days"}
RECENCY_NAME = {
    "sends": "days_since_send",
    "engagements": "days_since_engagement",
    "conversions": "days_since_conversion",
    "activity": "days_since_active",
}
BUILT_IN_DESCRIPTIONS = {
    "message_id": "the candidate message",
    "channel": "the candidate channel ('none' for send nothing)",
    "hour": "hour of day of the candidate send",
    "day_of_week": "ISO weekday of the decision time (1 = Monday)",
    "tenure_days": "days from signup to the decision time",
    "history_days": "days of the user's past that the log covers at the decision (since log_start or signup)",
    **{name: f"no unsubscribe from {name.removeprefix('subscribed_')} before ts" for name in SUBSCRIBED},
}


@dataclass(frozen=True)
class TableFeatures:
    """The attribute columns of one table that are features.

    Args:
        sparse: categorical columns (string, integer or boolean), each embedded by a vocabulary fitted on train.
        dense: numeric columns and their transform ("identity" or "log1p"), standardised on train.
        hashed: categorical columns with too many values, or new ones every day (a creative id), to keep a
            vocabulary of: column -> buckets; each value goes to bucket 1 + CRC-32 % buckets.
    """

    sparse: tuple[str, ...] = ()
    dense: dict[str, Transform] = field(default_factory=dict)
    hashed: dict[str, int] = field(default_factory=dict)

    @property
    def categorical(self) -> tuple[str, ...]:
        """The sparse columns: by vocabulary, then hashed."""
        return (*self.sparse, *self.hashed)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.categorical, *self.dense)


@dataclass(frozen=True)
class HistoryCount:
    """Point-in-time counts of one event table over windows before the decision.

    Args:
        table: "sends" (the log's own sends, by send_ts), "engagements", "conversions" or "activity"
            (active days, counted by date before the decision's day).
        windows_days: the windows; None takes the history's `windows_days`.
        per_channel: one count per channel (sends and engagements only: conversions and activity have none).
        recency: also `days_since_{event}` (days since the latest event before ts, capped at the build's
            `days_since_cap`, which is also its value when there is none).
    """

    table: HistoryTable
    windows_days: tuple[int, ...] | None = None
    per_channel: bool = False
    recency: bool = False


@dataclass(frozen=True)
class FeatureConfig:
    """Which columns of an event log are features (see the module docstring for the YAML form)."""

    users: TableFeatures = TableFeatures()
    messages: TableFeatures = TableFeatures()
    opportunities: TableFeatures = TableFeatures()
    windows_days: tuple[int, ...] = (7, 28)
    counts: tuple[HistoryCount, ...] = ()

    def __post_init__(self) -> None:
        for table in ATTRIBUTE_TABLES:
            declared: TableFeatures = getattr(self, table)
            for column, transform in declared.dense.items():
                if transform not in get_args(Transform):
                    raise InputError(
                        f"feature config: field '{table}.dense.{column}': transform must be one of "
                        f"{list(get_args(Transform))}, got {transform!r}"
                    )
            for column, buckets in declared.hashed.items():
                if not isinstance(buckets, int) or isinstance(buckets, bool) or buckets < 1:
                    raise InputError(
                        f"feature config: field '{table}.hashed.{column}': buckets must be a whole number >= 1, "
                        f"got {buckets!r}"
                    )
            reserved = sorted(set(declared.columns) & RESERVED)
            if reserved:
                raise InputError(
                    f"feature config: field '{table}': {reserved} are keys, actions or columns of the dataset, "
                    "not attributes"
                )
        for where, windows in [("history.windows_days", self.windows_days)] + [
            (f"history.counts[{i}].windows_days", c.windows_days) for i, c in enumerate(self.counts)
        ]:
            if windows is not None and (not windows or any(not isinstance(w, int) or w < 1 for w in windows)):
                raise InputError(f"feature config: field '{where}' must list whole days >= 1, got {windows}")
        for i, count in enumerate(self.counts):
            if count.table not in HISTORY_TABLES:
                raise InputError(
                    f"feature config: field 'history.counts[{i}].table' must be one of {list(HISTORY_TABLES)}, "
                    f"got {count.table!r}"
                )
            if count.per_channel and count.table not in ("sends", "engagements"):
                raise InputError(
                    f"feature config: field 'history.counts[{i}].per_channel': table '{count.table}' has no channel"
                )
        # Each part's names, not the merged `dense` mapping, in which a repeated name would silently collapse.
        dense = [*(n for t in ATTRIBUTE_TABLES for n in getattr(self, t).dense), *STANDING_DENSE]
        names = [*self.sparse, *dense, *self.history_counts, *self.recencies]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(f"feature config: feature name(s) {repeated} are declared twice (or clash with built-ins)")

    # -- the resolved feature set -------------------------------------------------------------------------

    def windows_of(self, count: HistoryCount) -> tuple[int, ...]:
        return count.windows_days if count.windows_days is not None else self.windows_days

    def count_names(self, count: HistoryCount) -> tuple[str, ...]:
        """The columns one history count produces, channel-major: sends_push_7d, sends_push_28d, ..."""
        return tuple(self.count_columns(count))

    def count_columns(self, count: HistoryCount) -> dict[str, str]:
        """The columns one history count produces, channel-major, each with its description."""
        stem, windows = COUNT_STEM[count.table], self.windows_of(count)
        what = "active days" if count.table == "activity" else count.table
        if count.per_channel:
            return {
                f"{stem}_{c}_{w}d": f"{c} {what} in the {w} days before the decision" for c in CHANNELS for w in windows
            }
        return {f"{stem}_{w}d": f"{what} in the {w} days before the decision" for w in windows}

    @property
    def history_counts(self) -> tuple[str, ...]:
        return tuple(name for count in self.counts for name in self.count_names(count))

    @property
    def recencies(self) -> tuple[str, ...]:
        return tuple(RECENCY_NAME[c.table] for c in self.counts if c.recency)

    @property
    def sparse(self) -> tuple[str, ...]:
        """Sparse features in input order: users', messages', the action's, the decision's, subscriptions (a table's
        hashed columns after its vocabulary ones)."""
        users, messages, context = (part.categorical for part in (self.users, self.messages, self.opportunities))
        return (*users, *messages, *ACTION_SPARSE, *context, *SUBSCRIBED)

    @property
    def hashed(self) -> dict[str, int]:
        """Hashed sparse features and their buckets."""
        return {name: n for table in ATTRIBUTE_TABLES for name, n in getattr(self, table).hashed.items()}

    @property
    def dense(self) -> dict[str, Transform]:
        """Dense features and transforms in input order: attributes, standing, history counts, recencies."""
        return {
            **self.users.dense,
            **self.messages.dense,
            **self.opportunities.dense,
            **STANDING_DENSE,
            **{name: "log1p" for name in self.history_counts},
            **{name: "identity" for name in self.recencies},
        }

    @property
    def sources(self) -> dict[str, str]:
        """Feature -> where its raw value comes from: a table's attribute, the action, the user's standing or
        history. A candidate takes the "action" and "messages" features of its own action."""
        sources = {name: table for table in ATTRIBUTE_TABLES for name in getattr(self, table).columns}
        sources |= {name: "action" for name in ACTION_SPARSE}
        sources |= {name: "history" for name in (*SUBSCRIBED, *self.history_counts, *self.recencies)}
        return sources | {name: "standing" for name in STANDING_DENSE}

    @property
    def descriptions(self) -> dict[str, str]:
        text = dict(BUILT_IN_DESCRIPTIONS)
        for table in ATTRIBUTE_TABLES:
            text |= {name: f"column '{name}' of table '{table}'" for name in getattr(self, table).columns}
        for count in self.counts:
            text |= self.count_columns(count)
            if count.recency:
                text[RECENCY_NAME[count.table]] = f"days since the user's latest {count.table} event before ts, capped"
        return text

    # -- YAML -------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        history = {"windows_days": list(raw.pop("windows_days")), "counts": list(raw.pop("counts"))}
        for count in history["counts"]:
            count["windows_days"] = list(count["windows_days"]) if count["windows_days"] is not None else None
        tables = {
            t: {"sparse": list(raw[t]["sparse"]), "dense": dict(raw[t]["dense"]), "hashed": dict(raw[t]["hashed"])}
            for t in ATTRIBUTE_TABLES
        }
        return {**tables, "history": history}

    @classmethod
    def from_dict(cls, raw: Any, source: str = "feature config") -> FeatureConfig:
        """Parse the YAML form; an unknown field, a wrong type or a bad value raises naming the field."""
        _require_mapping(raw, source, "")
        _reject_unknown(raw, (*ATTRIBUTE_TABLES, "history"), source, "")
        tables = {}
        for table in ATTRIBUTE_TABLES:
            part = raw.get(table) or {}
            _require_mapping(part, source, table)
            _reject_unknown(part, ("sparse", "dense", "hashed"), source, f"{table}.")
            sparse, dense, hashed = part.get("sparse") or [], part.get("dense") or {}, part.get("hashed") or {}
            if not isinstance(sparse, list) or not all(isinstance(c, str) for c in sparse):
                raise InputError(f"{source}: field '{table}.sparse' must be a list of column names, got {sparse!r}")
            _require_mapping(dense, source, f"{table}.dense")
            _require_mapping(hashed, source, f"{table}.hashed")
            tables[table] = TableFeatures(
                tuple(sparse), {str(k): v for k, v in dense.items()}, {str(k): v for k, v in hashed.items()}
            )
        history = raw.get("history") or {}
        _require_mapping(history, source, "history")
        _reject_unknown(history, ("windows_days", "counts"), source, "history.")
        counts = []
        for i, item in enumerate(history.get("counts") or []):
            where = f"history.counts[{i}]"
            _require_mapping(item, source, where)
            _reject_unknown(item, ("table", "windows_days", "per_channel", "recency"), source, f"{where}.")
            if "table" not in item:
                raise InputError(f"{source}: field '{where}.table' is missing")
            flags = {name: item.get(name, False) for name in ("per_channel", "recency")}
            for name, flag in flags.items():
                if not isinstance(flag, bool):
                    raise InputError(f"{source}: field '{where}.{name}' must be true or false, got {flag!r}")
            counts.append(HistoryCount(item["table"], _windows(item.get("windows_days"), source, where), **flags))
        windows = _windows(history.get("windows_days", [7, 28]), source, "history")
        try:
            return cls(**tables, windows_days=windows if windows is not None else (7, 28), counts=tuple(counts))
        except InputError as error:  # its message starts "feature config ...": name the file instead
            raise InputError(str(error).replace("feature config", source, 1)) from error

    @classmethod
    def load(cls, path: Path | str) -> FeatureConfig:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"feature config not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise InputError(f"feature config {path} is not valid YAML: {error}") from error
        return cls.from_dict(raw, source=f"feature config {path}")


def _windows(value: Any, source: str, where: str) -> tuple[int, ...] | None:
    """A list of whole days, or None where none is given."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(w, int) and not isinstance(w, bool) for w in value):
        raise InputError(f"{source}: field '{where}.windows_days' must list whole days >= 1, got {value!r}")
    return tuple(value)


def _require_mapping(value: Any, source: str, where: str) -> None:
    if not isinstance(value, dict):
        raise InputError(f"{source}: field '{where or '(top level)'}' must be a mapping, got {value!r}")


def _reject_unknown(raw: dict[str, Any], known: tuple[str, ...], source: str, prefix: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise InputError(f"{source}: unknown field(s) {[prefix + u for u in unknown]} (known: {list(known)})")


# The features of `mtr simulate`'s logs: the default of `mtr build-dataset`.
SIMULATOR_FEATURES = FeatureConfig(
    users=TableFeatures(sparse=("country", "platform", "plan", "age_bucket")),
    messages=TableFeatures(sparse=("message_type", "topic", "has_discount")),
    windows_days=(7, 28),
    counts=(
        HistoryCount("sends", per_channel=True),
        HistoryCount("engagements", per_channel=True, recency=True),
        HistoryCount("conversions", windows_days=(28,)),
        HistoryCount("activity"),
    ),
)
