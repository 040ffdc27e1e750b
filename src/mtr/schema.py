"""The dataset contract: features, tasks and the action columns, read from and written to `schema.json`.

Everything downstream (DataModule, models, metrics, policy, exporter) reads a `DatasetSchema` instead
of hard-coding columns.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mtr.errors import InputError
from mtr.io import read_json, write_json
from mtr.objectives import MESSAGING_OBJECTIVES, Objective, objective_names

OBJECTIVES = objective_names(MESSAGING_OBJECTIVES)  # the messaging objectives' names, in table order
CHANNELS = ("push", "email", "in_app")
NO_SEND = "none"  # the channel of a "send nothing" action
SPLITS = ("train", "validation", "test")
SCHEMA_FILE = "schema.json"
SCHEMA_CHECKPOINT_KEY = "mtr_schema"  # where a training checkpoint keeps its dataset schema
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """One model input and how its raw column becomes a tensor.

    Args:
        name: the raw column in the training table.
        kind: "sparse" (an id looked up in an embedding table) or "dense" (a float).
        dtype: the raw column's polars dtype, for example "String", "Int64", "Float64".
        vocabulary: sparse only; raw value `vocabulary[i]` (as a string) gets id `i + 1`, anything
            else (unknown or missing) gets id 0.
        hash_buckets: sparse only, instead of a vocabulary: a value (as a string) gets id 1 + its CRC-32 modulo
            `hash_buckets` (stable across machines and versions), a missing one id 0; for columns with too many
            values, or new ones every day (a creative id), to keep a vocabulary of.
        transform: dense only; "log1p" applies sign(x) * log1p(|x|) before standardising.
        mean: dense only; subtracted after the transform (fitted on the train split).
        std: dense only; divides after subtracting the mean.
        description: what the feature means, for people reading the schema.
        source: where the raw value comes from in an event-log dataset: "users", "messages" or "opportunities"
            (a declared attribute), "action", "standing" or "history" (`mtr.data.feature_config`); a candidate
            action brings its own "action" and "messages" values. Empty for other datasets.
    """

    name: str
    kind: Literal["sparse", "dense"]
    dtype: str
    vocabulary: tuple[str, ...] = ()
    transform: Literal["identity", "log1p"] = "identity"
    mean: float = 0.0
    std: float = 1.0
    description: str = ""
    source: str = ""
    hash_buckets: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("sparse", "dense"):
            raise InputError(f"feature '{self.name}': kind must be 'sparse' or 'dense', got {self.kind!r}")
        if self.transform not in ("identity", "log1p"):
            raise InputError(f"feature '{self.name}': transform must be 'identity' or 'log1p', got {self.transform!r}")
        if self.kind == "sparse" and not self.vocabulary and self.hash_buckets < 1:
            raise InputError(f"sparse feature '{self.name}' needs a non-empty vocabulary or hash_buckets >= 1")
        if self.vocabulary and self.hash_buckets:
            raise InputError(f"sparse feature '{self.name}' has both a vocabulary and hash_buckets; give one")
        if self.kind == "dense" and not self.std > 0:
            raise InputError(f"dense feature '{self.name}': std must be positive, got {self.std}")

    @property
    def num_embeddings(self) -> int:
        """Rows of this feature's embedding table: the vocabulary (or the hash buckets) plus the unknown id 0."""
        return (self.hash_buckets or len(self.vocabulary)) + 1


@dataclass(frozen=True)
class TaskSpec:
    """One prediction task, usually an objective on a channel (for example conversion on push).

    Args:
        name: unique task name, for example "conversion_push".
        objective: what is predicted, for example "conversion"; its kind (binary or continuous) and loss
            come from the schema's objective table.
        channel: the channel the task belongs to, "none" for organic (no-send) outcomes, or None
            when channels do not apply (census).
        label_column: the label column: 0/1 for a binary objective, real values for a continuous one.
        mask_column: 0/1 column; rows with 0 have no label for this task. None means every row
            is labelled.
    """

    name: str
    objective: str
    channel: str | None
    label_column: str
    mask_column: str | None = None


@dataclass(frozen=True)
class DatasetSchema:
    """A prepared dataset: its split files, features, tasks and action columns.

    Args:
        name: dataset name, for example "simulator" or "census".
        features: model inputs in input order.
        tasks: prediction tasks in output order.
        row_id_column: unique Int64 row key, used to join predictions back.
        action_column: the logged action (a string id), if the data are logs of a policy.
        channel_column: the logged action's channel, if any.
        propensity_column: the logging policy's probability of the logged action, if known.
        value_columns: other columns kept for analysis (for example spend).
        splits: split name -> Parquet file name inside the dataset folder.
        metadata: free-form facts about the data: source, fingerprint, row counts, rates.
        objectives: the objective table of the tasks (kind, direction, ...); objectives not declared
            here come from `MESSAGING_OBJECTIVES` by name, or are binary benefits (see `objective_table`).
    """

    name: str
    features: tuple[FeatureSpec, ...]
    tasks: tuple[TaskSpec, ...]
    row_id_column: str = "row_id"
    action_column: str | None = None
    channel_column: str | None = None
    propensity_column: str | None = None
    value_columns: tuple[str, ...] = ()
    splits: dict[str, str] = field(default_factory=lambda: {s: f"{s}.parquet" for s in SPLITS})
    metadata: dict[str, Any] = field(default_factory=dict)
    objectives: tuple[Objective, ...] = ()

    def __post_init__(self) -> None:
        named = (
            ("feature", [f.name for f in self.features]),
            ("task", self.task_names),
            ("objective", list(objective_names(self.objectives))),
        )
        for kind, names in named:
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise InputError(f"schema '{self.name}': duplicate {kind} names {duplicates}")
        if not self.tasks:
            raise InputError(f"schema '{self.name}' declares no tasks")
        for task in self.tasks:
            if task.channel not in (*CHANNELS, NO_SEND, None):
                raise InputError(
                    f"schema '{self.name}': task '{task.name}' has unknown channel {task.channel!r} "
                    f"(channels: {[*CHANNELS, NO_SEND]}, or null where channels do not apply)"
                )
        # A schema that carries its objective table (every dataset mtr builds) names every task's objective in it:
        # a misspelt objective would otherwise become a new binary benefit without a word.
        known = {*objective_names(self.objectives), *OBJECTIVES}
        unknown = sorted({t.objective for t in self.tasks} - known) if self.objectives else []
        if unknown:
            raise InputError(
                f"schema '{self.name}': task objective(s) {unknown} are not in its objective table {sorted(known)}"
            )

    @property
    def sparse_features(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if f.kind == "sparse")

    @property
    def dense_features(self) -> tuple[FeatureSpec, ...]:
        return tuple(f for f in self.features if f.kind == "dense")

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def objective_table(self) -> tuple[Objective, ...]:
        """The objectives of the tasks, in table order: declared ones first, then the messaging table's order,
        then undeclared names (binary benefits, such as census's income) in task order."""
        declared = {o.name: o for o in (*MESSAGING_OBJECTIVES, *self.objectives)}
        used = dict.fromkeys(t.objective for t in self.tasks)
        order = [*objective_names(self.objectives), *OBJECTIVES, *used]
        return tuple(declared.get(name, Objective(name)) for name in dict.fromkeys(order) if name in used)

    def objective(self, name: str) -> Objective:
        """The objective called `name`; an unknown name raises naming the schema's objectives."""
        for objective in self.objective_table:
            if objective.name == name:
                return objective
        raise InputError(f"schema '{self.name}' has no objective {name!r} (objectives: {self.objective_names})")

    @property
    def objective_names(self) -> tuple[str, ...]:
        return objective_names(self.objective_table)

    def to_dict(self) -> dict[str, Any]:
        return {"version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "schema") -> DatasetSchema:
        """Build a schema from its JSON form; unknown or missing fields raise `InputError` naming them."""
        raw = dict(raw)
        version = raw.pop("version", None)
        if version != SCHEMA_VERSION:
            raise InputError(f"{source}: field 'version' is {version!r}, expected {SCHEMA_VERSION}")
        features = tuple(
            _build(FeatureSpec, item, f"{source}: features[{i}]") for i, item in enumerate(raw.pop("features", []))
        )
        tasks = tuple(_build(TaskSpec, item, f"{source}: tasks[{i}]") for i, item in enumerate(raw.pop("tasks", [])))
        objectives = tuple(
            _build(Objective, item, f"{source}: objectives[{i}]") for i, item in enumerate(raw.pop("objectives", []))
        )
        raw["value_columns"] = tuple(raw.get("value_columns", ()))
        return _build(cls, {**raw, "features": features, "tasks": tasks, "objectives": objectives}, source)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / SCHEMA_FILE
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, folder: Path | str) -> DatasetSchema:
        """Read `schema.json` from a dataset folder."""
        path = Path(folder) / SCHEMA_FILE
        raw = read_json(path, missing=f"no {SCHEMA_FILE} in {folder}: is it a dataset prepared by mtr?")
        return cls.from_dict(raw, source=str(path))

    def split_path(self, folder: Path | str, split: str) -> Path:
        if split not in self.splits:
            raise InputError(f"dataset '{self.name}' has no split '{split}' (splits: {list(self.splits)})")
        return Path(folder) / self.splits[split]


def _build(cls: type, raw: dict[str, Any], source: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise InputError(f"{source}: unknown field(s) {unknown}; allowed: {sorted(names)}")
    values = {k: tuple(v) if isinstance(v, list) and k == "vocabulary" else v for k, v in raw.items()}
    try:
        return cls(**values)
    except TypeError as error:
        raise InputError(f"{source}: {error}") from error


def messaging_tasks(objectives: tuple[Objective, ...] = MESSAGING_OBJECTIVES) -> tuple[TaskSpec, ...]:
    """The messaging tasks of an objective table: every objective on every channel, then organic outcomes.

    Only objectives that exist without a send (conversion, retention) have "none" tasks: a no-send has no
    engagement or unsubscribe.
    """
    send_tasks = [
        TaskSpec(f"{o.name}_{c}", o.name, c, label_column=f"label_{o.name}", mask_column=f"mask_{o.name}_{c}")
        for c in CHANNELS
        for o in objectives
    ]
    organic = [
        TaskSpec(
            f"{o.name}_{NO_SEND}",
            o.name,
            NO_SEND,
            label_column=f"label_{o.name}",
            mask_column=f"mask_{o.name}_{NO_SEND}",
        )
        for o in objectives
        if o.exists_for_none
    ]
    return tuple(send_tasks + organic)
