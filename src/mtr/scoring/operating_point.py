"""`weights.json`: one chosen operating point of the ranking score, handed from `mtr pareto` to `mtr export`.

It holds the fusion weights, the policy (threshold, temperature, cap) and, for the record, the estimates
and provenance of the point. Loading checks every field and names the one that is wrong; the objective
weights are checked against an objective table when one is given (`mtr export` gives the schema's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtr.errors import InputError
from mtr.io import read_json, write_json
from mtr.objectives import Objective
from mtr.scoring.policy import PolicyConfig
from mtr.scoring.weights import FusionWeights

WEIGHTS_FILE = "weights.json"
FORMAT_VERSION = 1
FIELDS = ("fusion", "policy", "estimates", "provenance")


@dataclass(frozen=True)
class OperatingPoint:
    """A ranking score and sending policy chosen on the Pareto front.

    Args:
        fusion: how predictions become one score.
        policy: how scores become actions (threshold, softmax temperature, frequency cap).
        estimates: the point's estimated objectives, e.g. {"conversion": 0.021, "unsubscribe": 0.0009}.
        provenance: where it came from, e.g. study name, trial number, selection rule, data fingerprint.
    """

    fusion: FusionWeights = field(default_factory=FusionWeights)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    estimates: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "fusion": self.fusion.to_dict(),
            "policy": self.policy.to_dict(),
            "estimates": dict(self.estimates),
            "provenance": dict(self.provenance),
        }

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], source: str = WEIGHTS_FILE, objectives: Sequence[Objective] | None = None
    ) -> OperatingPoint:
        """Parse and check the JSON form; with `objectives`, the weights must name objectives of that table."""
        raw = dict(raw)
        if raw.pop("version", None) != FORMAT_VERSION:
            raise InputError(f"{source}: field 'version' must be {FORMAT_VERSION}")
        unknown = sorted(set(raw) - set(FIELDS))
        if unknown:
            raise InputError(f"{source}: unknown field(s) {unknown}")
        fusion = FusionWeights.from_dict(raw.get("fusion") or {}, f"{source}: fusion")
        if objectives is not None:
            try:
                fusion.named(objectives)
            except InputError as error:
                raise InputError(f"{source}: fusion: {error}") from error
        try:
            estimates = {str(k): float(v) for k, v in (raw.get("estimates") or {}).items()}
        except (TypeError, ValueError) as error:
            raise InputError(f"{source}: estimates: {error}") from error
        policy = PolicyConfig.from_dict(raw.get("policy"), f"{source}: policy")
        return cls(fusion, policy, estimates, dict(raw.get("provenance") or {}))

    @classmethod
    def load(cls, path: Path | str, objectives: Sequence[Objective] | None = None) -> OperatingPoint:
        return cls.from_dict(read_json(path, missing=f"weights file not found: {path}"), str(path), objectives)
