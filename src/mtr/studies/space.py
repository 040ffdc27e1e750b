"""A typed hyperparameter search space: dotted training-CLI keys with Optuna distributions.

In a tune config each parameter is a dotted key of `mtr fit` (the same keys as its command-line
overrides) mapped to a distribution:

    params:
      model.optimizer.init_args.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      model.architecture.init_args.shared.init_args.n_experts: {type: int, low: 2, high: 8}
      model.architecture.init_args.shared.init_args.expert_hidden: {type: categorical, choices: ["[16]", "[32]"]}
      model.loss_weighting.class_path: {type: categorical, choices: [mtr.training.losses.FixedWeights]}

A sampled trial becomes the overrides `--KEY VALUE` appended to the base training configs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import optuna

from mtr.errors import InputError

ParamType = Literal["float", "int", "categorical"]
Choice = str | int | float | bool
_FIELDS: dict[str, set[str]] = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@dataclass(frozen=True)
class Param:
    """One searched hyperparameter.

    Args:
        key: dotted `mtr fit` key, e.g. "model.optimizer.init_args.lr".
        type: "float", "int" or "categorical".
        low: lower bound (float and int), inclusive.
        high: upper bound (float and int), inclusive.
        log: sample on a log scale (float and int; needs low > 0).
        step: grid step (float and int; not with log).
        choices: the values of a categorical parameter (strings such as "[16]" for lists).
    """

    key: str
    type: ParamType
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Choice, ...] = ()

    def suggest(self, trial: optuna.Trial) -> Choice:
        """Draw this parameter's value for `trial` (recorded under `key` in the trial's params)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            step = 1 if self.step is None else int(self.step)
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=step, log=self.log)  # type: ignore[arg-type]
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)  # type: ignore[arg-type]

    def first_value(self) -> Choice:
        """A valid value without sampling (the first choice or the lower bound), for the dry run."""
        if self.type == "categorical":
            return self.choices[0]
        return int(self.low) if self.type == "int" else float(self.low)  # type: ignore[arg-type]


def parse_param(key: str, spec: Any) -> Param:
    """Validate one `params` entry; errors name the field as `params.KEY.FIELD`."""
    where = f"params.{key}"
    if not isinstance(key, str) or not _KEY.match(key):
        raise InputError(f"{where}: the key must be a dotted training option such as model.optimizer.init_args.lr")
    if not isinstance(spec, Mapping):
        raise InputError(f"{where}: expected a mapping with 'type' and its fields, got {spec!r}")
    kind = spec.get("type")
    if kind not in _FIELDS:
        raise InputError(f"{where}.type: must be one of {sorted(_FIELDS)}, got {kind!r}")
    unknown = sorted(set(spec) - _FIELDS[kind])
    if unknown:
        raise InputError(f"{where}.{unknown[0]}: not a field of a {kind} parameter (fields: {sorted(_FIELDS[kind])})")
    if kind == "categorical":
        return Param(key, kind, choices=_choices(where, spec.get("choices")))
    low, high = (_number(f"{where}.{name}", spec.get(name), kind) for name in ("low", "high"))
    if low > high:
        raise InputError(f"{where}.low: {low} is above high {high}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise InputError(f"{where}.log: must be true or false, got {log!r}")
    if log and low <= 0:
        raise InputError(f"{where}.low: a log-scale parameter needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        step = _number(f"{where}.step", step, kind)
        if step <= 0 or log:
            raise InputError(f"{where}.step: must be > 0 and cannot be combined with log, got {step}")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def parse_space(params: Mapping[str, Any]) -> tuple[Param, ...]:
    """Validate the `params` section of a tune config into `Param`s, in the config's order."""
    if not isinstance(params, Mapping) or not params:
        raise InputError("params: the search space needs at least one parameter")
    return tuple(parse_param(key, spec) for key, spec in params.items())


def cli_value(value: Any) -> str:
    """A value as `mtr fit` reads it on its command line: strings as given, the rest as JSON ("[16]", "true")."""
    return value if isinstance(value, str) else json.dumps(value)


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """Dotted key -> value pairs as command-line overrides: ["--KEY", "VALUE", ...]."""
    return [arg for key, value in values.items() for arg in (f"--{key}", cli_value(value))]


def _number(where: str, value: Any, kind: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{where}: must be a number, got {value!r}")
    if kind == "int" and float(value) != int(value):
        raise InputError(f"{where}: must be an integer for an int parameter, got {value!r}")
    return value


def _choices(where: str, choices: Any) -> tuple[Choice, ...]:
    if not isinstance(choices, list | tuple) or not choices:
        raise InputError(f"{where}.choices: must be a non-empty list, got {choices!r}")
    for choice in choices:
        # Optuna stores only plain values; lists are written as strings ("[16]") that the training CLI parses.
        if not isinstance(choice, str | int | float | bool):
            raise InputError(f"{where}.choices: {choice!r} is not a string, number or boolean (write lists as '[16]')")
    if len(set(map(repr, choices))) != len(choices):
        raise InputError(f"{where}.choices: repeated values in {list(choices)}")
    return tuple(choices)
