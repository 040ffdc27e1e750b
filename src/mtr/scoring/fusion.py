"""Score fusion: per-candidate task probabilities -> one ranking score per candidate.

Convention: a score is the candidate's utility **relative to sending nothing at the same
opportunity**, so the "none" candidate scores exactly 0 and a send scores

    sum form:      sum_k sign_k * w_k[c] * (f(p_k(send)) - f(p_k(none))) - cost[c]
    product form:  U_c(send) - U_c(none) - cost[c],  U_c(a) = prod_k (p_k(a) + floor)^w_k[c] * (1 - p_u(a))^w_u[c]

for objectives k = conversion, engagement, retention (sign +) and unsubscribe (sign -, a cost), with
c the send's channel (the none baseline is weighted with the send's channel weights too). "None" has
organic conversion and retention probabilities (the conversion_none / retention_none tasks) and zero
engagement and unsubscribe, so with the identity transform a score is the expected incremental
utility of the send. The conversion probability is multiplied by the candidate's value (for example
the offer's business value) when one is given. f is the identity or `log1p(p / floor)`, a concave
transform that keeps f(0) = 0. A policy then sends the best candidate when its score exceeds a
threshold (`mtr.scoring.policy`).

Everything that does not depend on the weights (the transformed, none-relative terms) is computed once
in `FusionInputs`; `fuse` is then a few vectorised passes over [N] arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np

from mtr.errors import InputError
from mtr.schema import CHANNELS, OBJECTIVES
from mtr.scoring.groups import CHANNEL_CODES, NONE_CODE, CandidateGroups

# Column order of every [N, 4] probability matrix of the scoring, OPE and Pareto stages.
CONVERSION, ENGAGEMENT, RETENTION, UNSUBSCRIBE = range(len(OBJECTIVES))
SIGNS = np.array([1.0, 1.0, 1.0, -1.0], dtype=np.float32)
WEIGHT_FIELDS = (*OBJECTIVES, "send_cost")


@dataclass(frozen=True)
class FusionWeights:
    """How task probabilities are fused into one score.

    Args:
        conversion: weight of the conversion probability (times the value signal when given).
        engagement: weight of the engagement probability.
        retention: weight of the retention probability.
        unsubscribe: weight of the unsubscribe probability, subtracted (a cost).
        send_cost: fixed cost of any send, subtracted from its score.
        per_channel: overrides per send channel, e.g. `{"push": {"unsubscribe": 4.0, "send_cost": 0.01}}`.
        transform: sum form only: "identity" or "log" (f(p) = log1p(p / floor)).
        form: "sum" (weighted sum of transformed probabilities) or "product" (weighted product).
        floor: scale of the log transform, and the floor added to probabilities in the product form.
        use_value: scale the conversion probability by the candidates' value signal.
    """

    conversion: float = 1.0
    engagement: float = 0.0
    retention: float = 0.0
    unsubscribe: float = 0.0
    send_cost: float = 0.0
    per_channel: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    transform: Literal["identity", "log"] = "identity"
    form: Literal["sum", "product"] = "sum"
    floor: float = 0.01
    use_value: bool = True

    def __post_init__(self) -> None:
        if self.transform not in ("identity", "log"):
            raise InputError(f"fusion weights: field 'transform' must be 'identity' or 'log', got {self.transform!r}")
        if self.form not in ("sum", "product"):
            raise InputError(f"fusion weights: field 'form' must be 'sum' or 'product', got {self.form!r}")
        if not self.floor > 0:
            raise InputError(f"fusion weights: field 'floor' must be positive, got {self.floor}")
        for channel, overrides in self.per_channel.items():
            if channel not in CHANNELS:
                raise InputError(f"fusion weights: per_channel key {channel!r} is not a channel {list(CHANNELS)}")
            unknown = sorted(set(overrides) - set(WEIGHT_FIELDS))
            if unknown:
                raise InputError(f"fusion weights: per_channel.{channel} has unknown fields {unknown}")
        negative = [
            (c, k)
            for c, row in zip(CHANNEL_CODES, self.matrix(), strict=True)
            for k, w in zip(WEIGHT_FIELDS, row, strict=True)
            if w < 0
        ]
        if negative:
            raise InputError(f"fusion weights must be non-negative (unsubscribe and send_cost are costs): {negative}")

    def matrix(self) -> np.ndarray:
        """[4 channel codes, 5] weights (conversion, engagement, retention, unsubscribe, send_cost); "none" row 0."""
        base = [getattr(self, name) for name in WEIGHT_FIELDS]
        rows = [
            [self.per_channel.get(c, {}).get(name, base[i]) for i, name in enumerate(WEIGHT_FIELDS)] for c in CHANNELS
        ]
        return np.array([*rows, [0.0] * len(WEIGHT_FIELDS)], dtype=np.float32)


@dataclass
class FusionInputs:
    """Per-candidate inputs of fusion that do not depend on the weights, precomputed once.

    Args:
        groups: the candidate group structure (the none candidate first in each group).
        probabilities: [N, 4] float, per candidate (conversion, engagement, retention, unsubscribe)
            of the candidate's channel; for "none", organic conversion and retention, 0 and 0.
        value: [N] optional per-candidate value that scales the conversion probability.
    """

    groups: CandidateGroups
    probabilities: np.ndarray
    value: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.groups.n_candidates
        self.probabilities = np.asarray(self.probabilities, dtype=np.float32)
        if self.probabilities.shape != (n, len(OBJECTIVES)):
            raise InputError(f"fusion: probabilities must be [{n}, 4], got {list(self.probabilities.shape)}")
        if not np.all(np.isfinite(self.probabilities)) or self.probabilities.min() < 0 or self.probabilities.max() > 1:
            raise InputError("fusion: probabilities must be finite and within [0, 1]")
        if self.value is not None:
            self.value = np.asarray(self.value, dtype=np.float32)
            if self.value.shape != (n,) or not np.all(np.isfinite(self.value)):
                raise InputError(f"fusion: value must be [{n}] finite numbers")
        self._cache: dict[tuple, np.ndarray] = {}

    @cached_property
    def is_send(self) -> np.ndarray:
        """[N] float32, 1 on sends: the send-cost term."""
        return self.groups.is_send().astype(np.float32)

    def _scaled(self, use_value: bool) -> np.ndarray:
        if not use_value or self.value is None:
            return self.probabilities
        scaled = self.probabilities.copy()
        scaled[:, CONVERSION] *= self.value
        return scaled

    def sum_terms(self, transform: str, floor: float, use_value: bool) -> np.ndarray:
        """[N, 4] sign_k * (f(p_k) - f(p_k of the group's none)); 0 on none rows."""
        key = ("sum", transform, floor, use_value and self.value is not None)
        if key not in self._cache:
            p = self._scaled(use_value)
            f = np.log1p(p / np.float32(floor)) if transform == "log" else p
            terms = (f - f[self.groups.starts][self.groups.group_of]) * SIGNS
            self._cache[key] = np.ascontiguousarray(terms, dtype=np.float32)
        return self._cache[key]

    def log_factors(self, floor: float, use_value: bool) -> tuple[np.ndarray, np.ndarray]:
        """Product form: [N, 4] log factors of each candidate and [N, 4] those of its group's none."""
        key = ("product", floor, use_value and self.value is not None)
        if key not in self._cache:
            p = self._scaled(use_value)
            logs = np.log(p + np.float32(floor))
            logs[:, UNSUBSCRIBE] = np.log1p(-np.minimum(self.probabilities[:, UNSUBSCRIBE], 1 - 1e-6))
            self._cache[key] = np.ascontiguousarray(logs, dtype=np.float32)
            self._cache[(*key, "none")] = np.ascontiguousarray(logs[self.groups.starts][self.groups.group_of])
        return self._cache[key], self._cache[(*key, "none")]


def fuse(inputs: FusionInputs, weights: FusionWeights) -> np.ndarray:
    """Ranking scores of every candidate, relative to sending nothing (the module docstring's convention).

    Args:
        inputs: the precomputed per-candidate terms.
        weights: the fusion weights.

    Returns:
        [N] float32 scores; exactly 0 on the none candidates.
    """
    matrix = weights.matrix()  # [4 channel codes, 5]
    channel = inputs.groups.channel
    sends = matrix[:NONE_CODE]
    # One weight vector for all send channels: matrix-vector products instead of per-candidate lookups.
    uniform = bool(np.all(sends == sends[0]))
    cost = sends[0, 4] * inputs.is_send if uniform else matrix[channel, 4]
    if weights.form == "sum":
        return (
            _weighted(inputs.sum_terms(weights.transform, weights.floor, weights.use_value), matrix, channel, uniform)
            - cost
        )
    logs, none_logs = inputs.log_factors(weights.floor, weights.use_value)
    own = np.exp(_weighted(logs, matrix, channel, uniform))
    baseline = np.exp(_weighted(none_logs, matrix, channel, uniform))
    # On none rows own == baseline, so the score is exactly 0 there.
    return own - baseline - cost


def _weighted(terms: np.ndarray, matrix: np.ndarray, channel: np.ndarray, uniform: bool) -> np.ndarray:
    """[N] sum_k matrix[channel, k] * terms[:, k] for terms [N, 4]."""
    if uniform:
        return terms @ matrix[0, :4]
    total = np.zeros(channel.size, dtype=np.float32)
    for k in range(terms.shape[1]):
        total += matrix[channel, k] * terms[:, k]
    return total
