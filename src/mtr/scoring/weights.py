"""Fusion weights: one weight per objective of a table, a send cost, per-channel overrides and the form.

The weights name objectives, not columns: `FusionWeights(conversion=1.0, unsubscribe=4.0)` holds two named
weights, and `matrix(objectives)` lays them out in an objective table's order when a score is computed.
Names are checked against the table there (a weights file does not know the dataset it will meet); an
objective that is not named weighs 0, except the table's first maximised objective, which weighs 1 (scores
are scale-free, so one benefit is the unit; for the messaging table that is conversion, as it always was).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtr.errors import InputError
from mtr.objectives import Objective
from mtr.schema import CHANNELS

SEND_COST = "send_cost"
# Fields of FusionWeights that are not objective weights; every other keyword names an objective.
SETTINGS = (SEND_COST, "per_channel", "transform", "form", "floor", "use_value")
TRANSFORMS = ("identity", "log")
FORMS = ("sum", "product")


@dataclass(frozen=True, init=False)
class FusionWeights:
    """How predictions are fused into one score.

    Args:
        weights: objective name -> weight (a benefit is added, a cost subtracted, by its direction);
            objective weights may also be given as keywords: `FusionWeights(conversion=1.0, unsubscribe=4.0)`.
        send_cost: fixed cost of any send, subtracted from its score.
        per_channel: overrides per send channel, e.g. `{"push": {"unsubscribe": 4.0, "send_cost": 0.01}}`.
        transform: sum form only: "identity" or "log" (f(p) = log1p(p / floor)).
        form: "sum" (weighted sum of transformed predictions) or "product" (weighted product).
        floor: scale of the log transform, and the floor added to predictions in the product form.
        use_value: multiply value-scaled objectives (conversion) by the candidates' value signal.
    """

    weights: Mapping[str, float]
    send_cost: float
    per_channel: Mapping[str, Mapping[str, float]]
    transform: str
    form: str
    floor: float
    use_value: bool

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        send_cost: float = 0.0,
        per_channel: Mapping[str, Mapping[str, float]] | None = None,
        transform: str = "identity",
        form: str = "sum",
        floor: float = 0.01,
        use_value: bool = True,
        **objective_weights: float,
    ) -> None:
        fields = {
            "weights": {**(weights or {}), **objective_weights},
            "send_cost": send_cost,
            "per_channel": {str(c): dict(o) for c, o in (per_channel or {}).items()},
            "transform": transform,
            "form": form,
            "floor": floor,
            "use_value": use_value,
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)  # frozen: the dataclass's own __init__ would do the same
        self._check()

    def _check(self) -> None:
        if self.transform not in TRANSFORMS:
            raise InputError(f"fusion weights: field 'transform' must be 'identity' or 'log', got {self.transform!r}")
        if self.form not in FORMS:
            raise InputError(f"fusion weights: field 'form' must be 'sum' or 'product', got {self.form!r}")
        if not _is_number(self.floor) or not self.floor > 0:
            raise InputError(f"fusion weights: field 'floor' must be positive, got {self.floor!r}")
        clash = sorted(set(self.weights) & {*SETTINGS, "weights"})
        if clash:
            raise InputError(f"fusion weights: {clash} are settings, not objective weights")
        for channel, overrides in self.per_channel.items():
            if channel not in CHANNELS:
                raise InputError(f"fusion weights: per_channel key {channel!r} is not a channel {list(CHANNELS)}")
            settings = sorted(set(overrides) & set(SETTINGS[1:]))
            if settings:
                raise InputError(f"fusion weights: per_channel.{channel} has unknown fields {settings}")
        values = [("", k, v) for k, v in (*self.weights.items(), (SEND_COST, self.send_cost))]
        values += [(f"per_channel.{c}.", k, v) for c, o in self.per_channel.items() for k, v in o.items()]
        for prefix, name, value in values:
            if not _is_number(value) or not np.isfinite(value):
                raise InputError(f"fusion weights: field '{prefix}{name}' must be a number, got {value!r}")
        negative = [f"{prefix}{name}" for prefix, name, value in values if value < 0]
        if negative:
            raise InputError(f"fusion weights must be non-negative (costs are subtracted by direction): {negative}")

    def named(self, objectives: Sequence[Objective]) -> dict[str, float]:
        """Every objective's base weight, in table order (the defaults of the module docstring filled in)."""
        names = [o.name for o in objectives]
        unknown = sorted(set(self.weights) - set(names))
        unknown += sorted({k for o in self.per_channel.values() for k in o} - {*names, SEND_COST})
        if unknown:
            raise InputError(f"fusion weights name {unknown}, which are not objectives of the data {names}")
        unit = next((o.name for o in objectives if o.direction == "maximize"), None)
        return {n: float(self.weights.get(n, 1.0 if n == unit else 0.0)) for n in names}

    def matrix(self, objectives: Sequence[Objective]) -> np.ndarray:
        """[4 channel codes, K + 1] float32: each send channel's K objective weights (table order) and its send
        cost; the "none" row is 0."""
        base = {**self.named(objectives), SEND_COST: float(self.send_cost)}
        rows = [list({**base, **self.per_channel.get(c, {})}.values()) for c in CHANNELS]
        return np.array([*rows, [0.0] * len(base)], dtype=np.float32)

    def resolved(self, objectives: Sequence[Objective]) -> FusionWeights:
        """The same weights with every objective of the table named (what weights.json records)."""
        return FusionWeights(self.named(objectives), **self.settings())

    def settings(self) -> dict[str, Any]:
        """The fields other than the objective weights, as keywords."""
        return {name: getattr(self, name) for name in SETTINGS}

    def to_dict(self) -> dict[str, Any]:
        """The flat form of weights.json: objective weights next to the settings."""
        return {**self.weights, **self.settings(), "per_channel": {c: dict(o) for c, o in self.per_channel.items()}}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: str = "fusion") -> FusionWeights:
        """Build from the flat form; a bad field raises `InputError` naming it."""
        try:
            return cls(**dict(raw))
        except TypeError as error:
            raise InputError(f"{source}: {error}") from error


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.floating | np.integer) and not isinstance(value, bool)
