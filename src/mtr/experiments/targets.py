"""Target policies named in experiment configs (kept free of torch so that the CLI stays light to import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class TargetPolicy:
    """A policy to evaluate.

    Args:
        name: label in the results.
        kind: "logging" (the simulator's own policy), "uniform" (uniform over eligible actions) or
            "fused" (the model's fused score with `weights`, `threshold`, `temperature`).
        weights: FusionWeights fields, for "fused".
        threshold: margin a send must clear, for "fused".
        temperature: None for the deterministic argmax, else softmax, for "fused".
    """

    name: str
    kind: Literal["logging", "uniform", "fused"] = "fused"
    weights: dict[str, Any] = field(default_factory=dict)
    threshold: float = 0.0
    temperature: float | None = None
