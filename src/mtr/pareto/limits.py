"""A study's constraints: budgets on harms (a largest value) and guardrails on goods (a smallest value).

`constraints: {unsubscribe: 0.002}` caps a reward (shorthand of `{unsubscribe: {max: 0.002}}`);
`{retention: {min: 0.66}}` puts a floor under one. A guardrail suits a good whose range over the policies is
below its estimate's noise (retention moves by a few tenths of a point while its standard error is larger):
as an axis it only adds noise to the front, as a floor it keeps the chosen point from eroding it.

Every check reads one slack per limit, `<= 0` when it holds: the upper bound minus the cap, the floor minus
the lower bound. Certification passes a trial's interval bounds, the oracle its truth as both bounds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from mtr.errors import InputError

MAX, MIN = "max", "min"


@dataclass(frozen=True)
class Limits:
    """The caps (reward -> largest allowed value) and floors (reward -> smallest allowed value) of a study."""

    caps: Mapping[str, float] = field(default_factory=dict)
    floors: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, constraints: Mapping[str, float | Mapping[str, float]], source: str = "constraints") -> Limits:
        """`{reward: cap}` or `{reward: {max: cap}}` / `{reward: {min: floor}}` (or both) -> Limits."""
        caps, floors = {}, {}
        for reward, limit in constraints.items():
            given = limit if isinstance(limit, Mapping) else {MAX: limit}
            unknown = sorted(set(given) - {MAX, MIN})
            if unknown or not given:
                wanted = "a number (a cap) or {max: ..} / {min: ..}"
                raise InputError(f"{source}.{reward}: give {wanted}, got {limit!r}")
            for bound, value in given.items():
                if not isinstance(value, int | float) or not math.isfinite(value):
                    raise InputError(f"{source}.{reward}.{bound}: must be a finite number, got {value!r}")
                (caps if bound == MAX else floors)[reward] = float(value)
            if reward in caps and reward in floors and floors[reward] > caps[reward]:
                raise InputError(f"{source}.{reward}: min {floors[reward]} is above max {caps[reward]}")
        return cls(caps, floors)

    @property
    def rewards(self) -> list[str]:
        return list(dict.fromkeys([*self.caps, *self.floors]))

    def slacks(self, low: Mapping[str, float], high: Mapping[str, float]) -> dict[str, float]:
        """`max_<reward>`: high - cap, `min_<reward>`: floor - low; each <= 0 when it holds (NaN: it does not)."""
        out = {f"{MAX}_{r}": high[r] - cap for r, cap in self.caps.items()}
        return out | {f"{MIN}_{r}": floor - low[r] for r, floor in self.floors.items()}

    def hold(self, truth: Mapping[str, float]) -> bool:
        """Whether the true values meet every limit."""
        return all(s <= 0 for s in self.slacks(truth, truth).values())

    def broken(self, low: Mapping[str, float], high: Mapping[str, float]) -> list[str]:
        """One phrase per limit the bounds fail, e.g. "unsubscribe upper bound 0.0031 > 0.002"."""
        phrases = [f"{r} upper bound {high[r]:.5g} > {cap:.5g}" for r, cap in self.caps.items() if not high[r] <= cap]
        return phrases + [
            f"{r} lower bound {low[r]:.5g} < {floor:.5g}" for r, floor in self.floors.items() if not low[r] >= floor
        ]

    def margins(self, values: Mapping[str, float]) -> list[tuple[str, float]]:
        """(reward, distance of the estimate inside its limit) per limit; <= 0 when the estimate itself fails."""
        inside = [(r, cap - values[r]) for r, cap in self.caps.items()]
        return inside + [(r, values[r] - floor) for r, floor in self.floors.items()]

    def describe(self, reward: str) -> str:
        """ " (budget 0.002)", " (floor 0.66)", both, or "" for a reward without a limit."""
        parts = [f"budget {self.caps[reward]:g}"] if reward in self.caps else []
        parts += [f"floor {self.floors[reward]:g}"] if reward in self.floors else []
        return f" ({', '.join(parts)})" if parts else ""
