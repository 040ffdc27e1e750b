"""What an A/B analysis reads from its config: metrics, their roles, guardrail margins, decompositions.

These dataclasses are the arguments of `mtr ab analyze`, so jsonargparse loads them from YAML and a
misspelt field fails naming the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from mtr.errors import InputError
from mtr.sim.config import WorldConfig

Role = Literal["primary", "secondary", "guardrail"]
Correction = Literal["holm", "fdr_bh"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric, measured per randomisation unit.

    A mean metric sets `column` (for example a 0/1 conversion or a spend per user). A ratio metric
    sets `numerator` and `denominator`, per-unit sums whose totals form the ratio (for example
    engagements per send = sum engagements / sum sends, with the user as the unit); its variance comes
    from the delta method.

    Args:
        name: name in the report.
        column: per-unit value, for a mean metric.
        numerator: per-unit numerator, for a ratio metric.
        denominator: per-unit denominator, for a ratio metric; its total must be positive in every arm.
        covariate: pre-period column for CUPED variance reduction, or None.
        role: "primary" metrics decide shipping; "secondary" are reported and corrected for
            multiplicity; "guardrail" metrics are tested for non-inferiority against `margin`.
        better: which direction is good: "higher" (conversion) or "lower" (unsubscribes).
        margin: guardrail only; the largest harm still acceptable, relative to control when
            `margin_relative` (0.05 = 5% worse), else in the metric's own units.
        margin_relative: whether `margin` is relative to the control value.
    """

    name: str
    column: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    covariate: str | None = None
    role: Role = "primary"
    better: Literal["higher", "lower"] = "higher"
    margin: float | None = None
    margin_relative: bool = True

    def __post_init__(self) -> None:
        is_mean = self.column is not None
        is_ratio = self.numerator is not None or self.denominator is not None
        if is_mean == is_ratio:
            raise InputError(f"metric '{self.name}': set either 'column' or both 'numerator' and 'denominator'")
        if is_ratio and (self.numerator is None or self.denominator is None):
            raise InputError(f"metric '{self.name}': a ratio metric needs both 'numerator' and 'denominator'")
        if self.role not in ("primary", "secondary", "guardrail"):
            raise InputError(f"metric '{self.name}': role must be primary, secondary or guardrail, got {self.role!r}")
        if self.better not in ("higher", "lower"):
            raise InputError(f"metric '{self.name}': better must be 'higher' or 'lower', got {self.better!r}")
        if self.role == "guardrail" and (self.margin is None or not self.margin >= 0):
            raise InputError(f"guardrail metric '{self.name}' needs a non-negative 'margin', got {self.margin!r}")
        if self.role != "guardrail" and self.margin is not None:
            raise InputError(f"metric '{self.name}': 'margin' applies to guardrails only (role is {self.role!r})")

    @property
    def value_column(self) -> str:
        """The per-unit column summed on top: `column` for a mean metric, `numerator` for a ratio."""
        return self.column if self.column is not None else self.numerator  # type: ignore[return-value]

    @property
    def columns(self) -> list[str]:
        """Every data column this metric reads."""
        return [c for c in (self.column, self.numerator, self.denominator, self.covariate) if c is not None]


@dataclass(frozen=True)
class DecompositionSpec:
    """A metric written as a product of chained factors, for example conversions per user =
    sends per user x engagements per send x conversions per engagement.

    Args:
        name: name of the product in the report.
        factors: metric names in chain order; each factor's denominator is the previous factor's
            numerator, so that the product telescopes to the last numerator per unit (or per the
            first factor's denominator when the first factor is a ratio).
    """

    name: str
    factors: list[str]

    def __post_init__(self) -> None:
        if len(self.factors) < 2:
            raise InputError(f"decomposition '{self.name}': needs at least two factors, got {self.factors}")


def check_chain(decomposition: DecompositionSpec, metrics: dict[str, MetricSpec]) -> list[MetricSpec]:
    """Return the factor metrics, raising `InputError` unless they telescope (each denominator is the
    previous factor's numerator)."""
    missing = [f for f in decomposition.factors if f not in metrics]
    if missing:
        raise InputError(f"decomposition '{decomposition.name}': unknown metrics {missing} (metrics: {list(metrics)})")
    factors = [metrics[f] for f in decomposition.factors]
    for previous, factor in zip(factors, factors[1:], strict=False):
        if factor.denominator != previous.value_column:
            raise InputError(
                f"decomposition '{decomposition.name}': factor '{factor.name}' has denominator "
                f"{factor.denominator!r}, expected the previous factor's numerator {previous.value_column!r}"
            )
    return factors


@dataclass(frozen=True)
class PolicyChange:
    """The variant policy: the logging policy with some of its knobs changed (None = unchanged).

    Args:
        exploration: share of each decision spread uniformly over eligible actions.
        none_share: probability that the greedy part sends nothing.
        policy_temperature: softmax temperature over the send actions.
        policy_id: the variant's name.
    """

    exploration: float | None = None
    none_share: float | None = 0.3
    policy_temperature: float | None = None
    policy_id: str = "variant"

    def apply(self, world: WorldConfig) -> WorldConfig:
        """The world with this policy; its outcome model is the same."""
        changes = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        variant = dataclasses.replace(world, **changes)
        if variant == dataclasses.replace(world, policy_id=self.policy_id):
            raise InputError("variant: the policy change leaves every policy knob as it is; nothing to test")
        return variant
