"""Score fusion: per-candidate predictions of K objectives -> one ranking score per candidate.

Convention: a score is the candidate's utility **relative to sending nothing at the same opportunity**, so
the "none" candidate scores exactly 0 and a send on channel c scores

    sum form:      sum_k sign_k * w_k[c] * (f(p_k(send)) - f(p_k(none))) - cost[c]
    product form:  U_c(send) - U_c(none) - cost[c],  U_c(a) = prod_k g_k(a)^w_k[c]

over the objective table's objectives k, with sign_k = +1 for a maximised objective (a benefit) and -1 for
a minimised one (a cost), and g_k = p_k + floor for benefits, 1 - p_k for costs (binary costs only: the
product form refuses a continuous cost). The none baseline is weighted with the send's channel weights.
"None" predictions come from the organic ("none") tasks; an objective without one is 0 for "none", so with
the identity transform a score is the expected incremental utility of the send. Value-scaled objectives
(conversion) are multiplied by the candidate's value (for example the offer's business value) when one is
given. f is the identity or `log1p(p / floor)`, a concave transform that keeps f(0) = 0.

One formula, two array libraries: the weight-independent terms (`scaled`, `sum_terms`, `product_logs`) are
written once for numpy and torch alike; numpy (`FusionInputs`, `fuse`, `ChannelWeights`, used by the studies
and the off-policy evaluator) caches them and reduces with einsum, torch (`TorchFusion`, inside the exported
program) reduces per row. A policy then turns scores into actions (`mtr.scoring.policy`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from mtr.errors import InputError
from mtr.objectives import MESSAGING_OBJECTIVES, Objective
from mtr.scoring.groups import NONE_CODE, CandidateGroups
from mtr.scoring.weights import FusionWeights

SURVIVAL_CAP = 1 - 1e-6  # 1 - p of a cost stays positive, so its log is finite


@dataclass(frozen=True)
class Ops:
    """The few elementwise functions the shared formula needs, from numpy or torch."""

    log: Callable[[Any], Any]
    log1p: Callable[[Any], Any]
    where: Callable[[Any, Any, Any], Any]


NUMPY = Ops(np.log, np.log1p, np.where)
TORCH = Ops(torch.log, torch.log1p, torch.where)


def signs(objectives: Sequence[Objective]) -> np.ndarray:
    """[K] float32: +1 for maximised objectives, -1 for minimised ones (costs)."""
    return np.array([o.sign for o in objectives], dtype=np.float32)


def value_scaled(objectives: Sequence[Objective]) -> np.ndarray:
    """[K] bool: the objectives multiplied by the candidate's value signal."""
    return np.array([o.value_scaled for o in objectives], dtype=bool)


def survival(objectives: Sequence[Objective]) -> np.ndarray:
    """[K] bool: the costs whose product-form factor is the probability 1 - p of avoiding them."""
    return np.array([o.direction == "minimize" for o in objectives], dtype=bool)


def check_form(objectives: Sequence[Objective], weights: FusionWeights) -> None:
    """Refuse weights whose transform needs a probability on a weighted continuous objective.

    The product form multiplies by (1 - p) for a cost and by (v + floor) for a benefit, and the log transform
    takes log1p(v / floor): a continuous value can be negative or above 1, which would give NaN scores.
    """
    if weights.form == "sum" and weights.transform == "identity":
        return
    matrix = weights.matrix(objectives)
    weighted = [o.name for k, o in enumerate(objectives) if o.kind != "binary" and np.any(matrix[:, k] > 0)]
    if weighted:
        kind = "the product form" if weights.form == "product" else "the log transform"
        raise InputError(
            f"fusion: {kind} needs probabilities, and {weighted} are continuous objectives: "
            "use form 'sum' with transform 'identity', or give them weight 0"
        )


def scaled(values: Any, value: Any, mask: Any, ops: Ops) -> Any:
    """[N, K] predictions with the value-scaled columns (`mask` [K]) multiplied by the value [N]."""
    return values * ops.where(mask, value[:, None], 1.0)


def sum_terms(values: Any, baseline: Any, sign: Any, transform: str, floor: float, ops: Ops) -> Any:
    """[N, K] sign_k * (f(v_k) - f(v_k of the candidate's none)); 0 on none rows.

    Args:
        values: [N, K] (scaled) predictions.
        baseline: [N] index of each candidate's "none" candidate.
        sign: [K] +1 / -1.
    """
    f = ops.log1p(values / floor) if transform == "log" else values
    return (f - f[baseline]) * sign


def product_logs(values: Any, raw: Any, cost: Any, floor: float, ops: Ops) -> Any:
    """[N, K] log factors of the product form: log(v + floor) for benefits, log(1 - p) for costs (`cost` [K]).

    Args:
        values: [N, K] (scaled) predictions.
        raw: [N, K] predictions before value scaling (a cost's probability is never scaled).
    """
    return ops.where(cost, ops.log1p(-raw.clip(max=SURVIVAL_CAP)), ops.log(values + floor))


@dataclass(frozen=True)
class ChannelWeights:
    """A trial's weights per channel code and the numpy reductions of fusion over objective-major terms.

    Attributes:
        matrix: [4 channel codes, K + 1] float32 (K objective weights, then the send cost; "none" row 0).
        uniform: every send channel has the same row (one weight vector: matrix-vector products).
    """

    matrix: np.ndarray
    uniform: bool

    @classmethod
    def of(cls, weights: FusionWeights, objectives: Sequence[Objective]) -> ChannelWeights:
        matrix = weights.matrix(objectives)
        return cls(matrix, bool(np.all(matrix[:NONE_CODE] == matrix[0])))

    def weighted(self, terms: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """[M] sum_k w_k[channel] * terms[k] of terms [K, M]."""
        k = terms.shape[0]
        # einsum, not `@`: a multi-threaded BLAS matrix-vector product was 6x slower on a busy 2-core machine.
        if self.uniform:
            return np.einsum("k,kn->n", self.matrix[0, :k], terms)
        return np.einsum("kn,kn->n", terms, self.matrix[channel, :k].T)

    def cost(self, channel: np.ndarray) -> np.ndarray | np.float32:
        """[M] send cost of each candidate's channel (a scalar when uniform: it then applies to sends only)."""
        return self.matrix[0, -1] if self.uniform else self.matrix[channel, -1]

    def send_scores(self, terms: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """[M] sum-form scores of send candidates from their terms [K, M] (`FusionInputs.sum_terms`)."""
        return self.weighted(terms, channel) - self.cost(channel)


@dataclass
class FusionInputs:
    """Per-candidate inputs of fusion that do not depend on the weights, precomputed once.

    Args:
        groups: the candidate group structure (the none candidate first in each group).
        probabilities: [N, K] predictions of the candidate's channel tasks, in the table's objective order
            (probabilities of binary objectives, values of continuous ones); for "none", the organic tasks'
            and 0 where an objective has none.
        value: [N] optional per-candidate value that scales the value-scaled objectives.
        objectives: the objective table of the columns.
    """

    groups: CandidateGroups
    probabilities: np.ndarray
    value: np.ndarray | None = None
    objectives: tuple[Objective, ...] = MESSAGING_OBJECTIVES

    def __post_init__(self) -> None:
        n, k = self.groups.n_candidates, len(self.objectives)
        self.probabilities = np.asarray(self.probabilities, dtype=np.float32)
        if self.probabilities.shape != (n, k):
            raise InputError(f"fusion: predictions must be [{n}, {k}], got {list(self.probabilities.shape)}")
        binary = self.probabilities[:, [o.kind == "binary" for o in self.objectives]]
        if not np.all(np.isfinite(self.probabilities)) or binary.min(initial=0) < 0 or binary.max(initial=0) > 1:
            raise InputError("fusion: predictions must be finite, and probabilities of binary objectives in [0, 1]")
        if self.value is not None:
            self.value = np.asarray(self.value, dtype=np.float32)
            if self.value.shape != (n,) or not np.all(np.isfinite(self.value)):
                raise InputError(f"fusion: value must be [{n}] finite numbers")
        self._cache: dict[tuple, np.ndarray] = {}

    @cached_property
    def baseline(self) -> np.ndarray:
        """[N] index of each candidate's group's "none" candidate."""
        return self.groups.starts[self.groups.group_of]

    def _scaled(self, use_value: bool) -> np.ndarray:
        if not use_value or self.value is None:
            return self.probabilities
        return scaled(self.probabilities, self.value, value_scaled(self.objectives), NUMPY)

    def sum_terms(self, transform: str, floor: float, use_value: bool) -> np.ndarray:
        """[K, N] objective-major sign_k * (f(p_k) - f(p_k of the group's none)); 0 on none rows."""
        key = ("sum", transform, floor, use_value and self.value is not None)
        if key not in self._cache:
            terms = sum_terms(self._scaled(use_value), self.baseline, signs(self.objectives), transform, floor, NUMPY)
            self._cache[key] = np.ascontiguousarray(terms.T, dtype=np.float32)
        return self._cache[key]

    def log_factors(self, floor: float, use_value: bool) -> tuple[np.ndarray, np.ndarray]:
        """Product form: [K, N] log factors of each candidate and [K, N] those of its group's none."""
        key = ("product", floor, use_value and self.value is not None)
        if key not in self._cache:
            logs = product_logs(self._scaled(use_value), self.probabilities, survival(self.objectives), floor, NUMPY)
            self._cache[key] = np.ascontiguousarray(logs.T, dtype=np.float32)
            self._cache[(*key, "none")] = np.ascontiguousarray(self._cache[key][:, self.baseline])
        return self._cache[key], self._cache[(*key, "none")]


def fuse(inputs: FusionInputs, weights: FusionWeights) -> np.ndarray:
    """Ranking scores of every candidate, relative to sending nothing (the module docstring's convention).

    Returns:
        [N] float32 scores; exactly 0 on the none candidates.
    """
    check_form(inputs.objectives, weights)
    channel_weights = ChannelWeights.of(weights, inputs.objectives)
    channel = inputs.groups.channel
    if weights.form == "sum":
        scores = channel_weights.send_scores(
            inputs.sum_terms(weights.transform, weights.floor, weights.use_value), channel
        )
    else:
        logs, none_logs = inputs.log_factors(weights.floor, weights.use_value)
        own, baseline = (np.exp(channel_weights.weighted(t, channel)) for t in (logs, none_logs))
        scores = own - baseline - channel_weights.cost(channel)
    scores[inputs.groups.starts] = 0.0  # the baseline itself (a uniform send cost was subtracted from every row)
    return scores


class TorchFusion(nn.Module):
    """The same fusion in torch, per row: (predictions, channel, baseline, value) -> scores, for `torch.export`.

    Args:
        objectives: the objective table of the prediction columns.
        weights: the fusion weights of the chosen operating point.
    """

    def __init__(self, objectives: Sequence[Objective], weights: FusionWeights) -> None:
        super().__init__()
        check_form(objectives, weights)
        # Buffers, not Python constants: they are saved as plain tensors in the .pt2 archive.
        self.register_buffer("weights", torch.from_numpy(weights.matrix(objectives)))  # [4 channel codes, K + 1]
        self.register_buffer("signs", torch.from_numpy(signs(objectives)))
        self.register_buffer("value_scaled", torch.from_numpy(value_scaled(objectives)))
        self.register_buffer("survival", torch.from_numpy(survival(objectives)))
        self.k, self.form, self.transform = len(objectives), weights.form, weights.transform
        self.floor, self.use_value = float(weights.floor), bool(weights.use_value)

    def forward(
        self, values: torch.Tensor, channel: torch.Tensor, baseline: torch.Tensor, value: torch.Tensor
    ) -> torch.Tensor:
        """[B] scores of predictions [B, K]; channel [B] codes, baseline [B] batch position of each candidate's
        "none", value [B] (ones when unused); exactly 0 on "none" rows."""
        rows = self.weights[channel]  # [B, K + 1]: the send's channel weights, also for its baseline
        weights, cost = rows[:, : self.k], rows[:, self.k]
        scaled_values = scaled(values, value, self.value_scaled, TORCH) if self.use_value else values
        if self.form == "sum":
            terms = sum_terms(scaled_values, baseline, self.signs, self.transform, self.floor, TORCH)
            return (terms * weights).sum(dim=1) - cost
        logs = product_logs(scaled_values, values, self.survival, self.floor, TORCH)
        return torch.exp((logs * weights).sum(dim=1)) - torch.exp((logs[baseline] * weights).sum(dim=1)) - cost
