"""`weights.json`: one chosen operating point of the ranking score, handed from `mtr pareto` to `mtr export`.

It holds the fusion weights, the policy (threshold, temperature, cap) and, for the record, the estimates
and provenance of the point. Loading checks every field and names the one that is wrong.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtr.errors import InputError
from mtr.io import read_json, write_json
from mtr.scoring.fusion import FusionWeights
from mtr.scoring.policy import FrequencyCap, PolicyConfig

WEIGHTS_FILE = "weights.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class OperatingPoint:
    """A ranking score and sending policy chosen on the Pareto front.

    Args:
        fusion: how task probabilities become one score.
        policy: how scores become actions (threshold, softmax temperature, frequency cap).
        estimates: the point's estimated objectives, e.g. {"conversion": 0.021, "unsubscribe": 0.0009}.
        provenance: where it came from, e.g. study name, trial number, selection rule, data fingerprint.
    """

    fusion: FusionWeights = field(default_factory=FusionWeights)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    estimates: dict[str, float] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = WEIGHTS_FILE) -> OperatingPoint:
        raw = dict(raw)
        if raw.pop("version", None) != FORMAT_VERSION:
            raise InputError(f"{source}: field 'version' must be {FORMAT_VERSION}")
        _reject_unknown(raw, cls, source)
        policy = dict(raw.get("policy") or {})
        _reject_unknown(policy, PolicyConfig, f"{source}: policy")
        if policy.get("cap") is not None:
            _reject_unknown(policy["cap"], FrequencyCap, f"{source}: policy.cap")
            policy["cap"] = FrequencyCap(**policy["cap"])
        fusion = dict(raw.get("fusion") or {})
        _reject_unknown(fusion, FusionWeights, f"{source}: fusion")
        try:
            return cls(
                fusion=FusionWeights(**fusion),
                policy=PolicyConfig(**policy),
                estimates={str(k): float(v) for k, v in (raw.get("estimates") or {}).items()},
                provenance=dict(raw.get("provenance") or {}),
            )
        except (TypeError, ValueError) as error:
            raise InputError(f"{source}: {error}") from error

    @classmethod
    def load(cls, path: Path | str) -> OperatingPoint:
        return cls.from_dict(read_json(path, missing=f"weights file not found: {path}"), source=str(path))


def _reject_unknown(raw: dict[str, Any], cls: type, source: str) -> None:
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InputError(f"{source}: unknown field(s) {unknown}")
