"""Fast evaluation of one deterministic fused policy: the inner loop of the Pareto study.

A trial is a weight vector and a threshold; its value is the off-policy estimate of each reward. The
general path (`fuse` -> `decide` -> `ope.evaluate`) recomputes group structure and every estimator
with its standard error for each trial. Here everything that no trial changes is done once:

1. **Dominated candidates are pruned.** In the sum form a send's score is `w . T_c - cost[channel]`
   with T_c the signed, none-relative terms (`FusionInputs.sum_terms`) and w >= 0. When another send
   of the same opportunity and channel has T at least as large in every objective (and larger in one,
   or equal and earlier), its score is at least as large for every non-negative w, so the argmax never
   picks the pruned one. Exact except for exact score ties, which need a zero weight on every
   objective in which the two differ (a probability-zero event for continuously sampled weights).
2. **Groups are bucketed by their number of kept sends**, so that fusion is one matrix-vector
   product per bucket and the policy one `argmax` along a dense axis, with no ragged reductions.
3. **Off-policy estimates use the policy's sparsity**: a deterministic policy matches the logged
   action in a few groups only, so IPS and SNIPS are sums over those; DR's direct term is one gather
   of the reward model at the chosen candidates.

The results equal the general path's (tests check decisions and estimates against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtr.errors import InputError
from mtr.ope.estimators import ESTIMATORS, LoggedFeedback
from mtr.scoring.fusion import FusionInputs, FusionWeights, fuse
from mtr.scoring.groups import NONE_CODE
from mtr.scoring.policy import PolicyConfig, decide


@dataclass(frozen=True)
class SendBucket:
    """Opportunities with the same number `s` of kept sends.

    Attributes:
        groups: [G_s] group indices.
        candidates: [G_s, s] global candidate indices of the kept sends, in the original order.
        terms: [4, G_s * s] float32 sum terms of those candidates, objective-major (columns follow `candidates`
            row-major), so that fusion is one BLAS matrix-vector product.
        channel: [G_s, s] int8 channel codes.
    """

    groups: np.ndarray
    candidates: np.ndarray
    terms: np.ndarray
    channel: np.ndarray


def dominated_sends(terms: np.ndarray, channel: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    """[N] True for send candidates that another send of the same group and channel dominates.

    Args:
        terms: [N, K] values, larger is better in each column.
        channel: [N] channel codes (NONE_CODE rows are never pruned).
        group_of: [N] group of each candidate.
    """
    send = np.flatnonzero(channel != NONE_CODE)
    order = send[np.lexsort((send, channel[send], group_of[send]))]  # by group, channel, original position
    block = group_of[order] * (NONE_CODE + 1) + channel[order]
    values = terms[order]
    pruned = np.zeros(order.size, dtype=bool)
    for shift in range(1, order.size):
        same = np.flatnonzero(block[shift:] == block[:-shift])  # pairs (i, i + shift) in one block
        if same.size == 0:
            break
        earlier, later = values[same], values[same + shift]
        ge = (earlier >= later).all(axis=1)
        le = (earlier <= later).all(axis=1)
        equal = ge & le
        pruned[same + shift] |= ge  # the later one is no better (ties: the earlier one stays)
        pruned[same] |= le & ~equal
    out = np.zeros(terms.shape[0], dtype=bool)
    out[order] = pruned
    return out


class DeterministicEvaluator:
    """Decisions and off-policy estimates of deterministic fused policies over one logged problem.

    Args:
        inputs: the fusion inputs (candidates and the model's probabilities).
        feedback: the logs aligned with the same candidates (rewards incl. send volume, predictions for DR).
        template: fusion settings no trial changes (transform, form, floor, use_value).
        truth: optional [N, K] true reward probabilities per candidate (simulator), same columns as the rewards.
        prune: drop dominated candidates (sum form only; see the module docstring).
    """

    def __init__(
        self,
        inputs: FusionInputs,
        feedback: LoggedFeedback,
        template: FusionWeights = FusionWeights(),  # noqa: B008 (frozen dataclass)
        truth: np.ndarray | None = None,
        prune: bool = True,
    ) -> None:
        self.inputs, self.feedback, self.template = inputs, feedback, template
        groups = inputs.groups
        if truth is not None and truth.shape != (groups.n_candidates, len(feedback.reward_names)):
            raise InputError(f"pareto: truth must be [{groups.n_candidates}, {len(feedback.reward_names)}]")
        self.truth = truth
        self.fast = template.form == "sum"
        self.buckets: list[SendBucket] = []
        self.kept = groups.n_candidates
        if self.fast:
            terms = inputs.sum_terms(template.transform, template.floor, template.use_value)
            keep = groups.is_send()
            if prune:
                keep &= ~dominated_sends(terms, groups.channel, groups.group_of)
            self.kept = int(keep.sum()) + groups.n_groups
            self.buckets = _buckets(terms, groups.channel, groups.group_of, keep, groups.n_groups)
        self._prepare_estimates()

    def _prepare_estimates(self) -> None:
        """Per-group constants of the estimators: [G, K] float64, reward-masked."""
        fb = self.feedback
        observed = fb.mask.astype(np.float64)
        inverse = 1.0 / fb.propensity
        self.n = observed.sum(axis=0)
        self.weighted_reward = fb.rewards * observed * inverse[:, None]  # IPS numerator per matched row
        self.weight = observed * inverse[:, None]  # SNIPS denominator per matched row
        self.observed = np.ascontiguousarray(observed.T)  # [K, G]
        self.all_observed = bool(fb.mask.all())
        self.dr_correction = None
        # Reward-major [K, N] copies: one contiguous gather per reward is faster than a gather of [N, K] rows.
        self.predicted = None if fb.predicted is None else np.ascontiguousarray(fb.predicted.T)
        self.truth_by_reward = None if self.truth is None else np.ascontiguousarray(self.truth.T, dtype=np.float64)
        if fb.predicted is not None:
            self.dr_correction = (fb.rewards - fb.predicted[fb.logged_index]) * observed * inverse[:, None]

    def chosen(self, weights: FusionWeights, policy: PolicyConfig) -> np.ndarray:
        """[G] global index of the candidate each opportunity's policy picks (as `decide` would)."""
        groups = self.inputs.groups
        if policy.temperature is not None:
            raise InputError("pareto: the study searches deterministic policies (policy temperature must be None)")
        if not self.fast or policy.cap is not None:
            return decide(groups, fuse(self.inputs, weights), policy).chosen
        matrix = weights.matrix()  # [4 channel codes, 5]
        sends = matrix[:NONE_CODE]
        uniform = bool(np.all(sends == sends[0]))
        chosen = groups.starts.copy()
        threshold = np.float32(policy.threshold)
        for bucket in self.buckets:
            # einsum, not `@`: a multi-threaded BLAS matrix-vector product was 6x slower on a busy 2-core machine.
            if uniform:
                scores = np.einsum("k,kn->n", sends[0, :4], bucket.terms) - sends[0, 4]
            else:
                row = sends[bucket.channel.ravel()].T  # [5, G_s * s]
                scores = np.einsum("kn,kn->n", bucket.terms, row[:4]) - row[4]
            size = bucket.candidates.shape[1]
            # First maximum: the earliest candidate, as in `decide`; flat positions avoid 2-D fancy indexing.
            best = scores.reshape(-1, size).argmax(axis=1) + np.arange(0, scores.size, size)
            send = np.take(scores, best) > threshold  # a send must beat "none" (ties go to none, as in `decide`)
            chosen[bucket.groups] = np.where(send, np.take(bucket.candidates, best), chosen[bucket.groups])
        return chosen

    def estimate(self, chosen: np.ndarray, estimator: str) -> np.ndarray:
        """[K] the estimator's value of each reward per opportunity for the deterministic choice `chosen` [G]."""
        if estimator not in ESTIMATORS:
            raise InputError(f"pareto: estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")
        matched = np.flatnonzero(chosen == self.feedback.logged_index)
        numerator = self.weighted_reward[matched].sum(axis=0)
        if estimator == "ips":
            return numerator / self.n
        if estimator == "snips":
            total = self.weight[matched].sum(axis=0)
            return np.divide(numerator, total, out=np.full_like(numerator, np.nan), where=total > 0)
        if self.dr_correction is None:
            raise InputError("pareto: estimator 'dr' needs the model's predictions of every candidate")
        return (self._direct(self.predicted, chosen) + self.dr_correction[matched].sum(axis=0)) / self.n

    def true_value(self, chosen: np.ndarray) -> np.ndarray:
        """[K] the true mean reward per opportunity (over the same rows as the estimates); needs `truth`."""
        if self.truth is None:
            raise InputError("pareto: no true probabilities (only the simulator has an oracle)")
        return self._direct(self.truth_by_reward, chosen) / self.n

    def _direct(self, by_reward: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """[K] sum over groups of a reward-major per-candidate table [K, N] at the chosen candidates, observed rows."""
        if self.all_observed:
            return np.array([np.take(row, chosen).sum(dtype=np.float64) for row in by_reward])
        pairs = zip(by_reward, self.observed, strict=True)
        return np.array([np.dot(np.take(row, chosen), seen) for row, seen in pairs])


def _buckets(
    terms: np.ndarray, channel: np.ndarray, group_of: np.ndarray, keep: np.ndarray, n_groups: int
) -> list[SendBucket]:
    """Kept sends grouped by how many each opportunity has; candidate order within a group is kept."""
    kept = np.flatnonzero(keep)  # ascending: groups in order, candidates in their original order
    counts = np.bincount(group_of[kept], minlength=n_groups)
    first = np.cumsum(counts) - counts  # position of each group's first kept send in `kept`
    buckets = []
    for size in np.unique(counts[counts > 0]):
        groups = np.flatnonzero(counts == size)
        candidates = kept[first[groups][:, None] + np.arange(size)]  # [G_s, s]
        buckets.append(
            SendBucket(groups, candidates, np.ascontiguousarray(terms[candidates.ravel()].T), channel[candidates])
        )
    return buckets
