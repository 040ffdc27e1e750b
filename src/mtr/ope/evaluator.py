"""Fast evaluation of fused policies: the inner loop of the Pareto study.

A trial is a weight vector and a policy; its value is the off-policy estimate of each reward. The general
path (`fuse` -> `decide` -> the estimators' terms over every row) serves any policy. For the common
deterministic sum-form policy, everything that no trial changes is done once:

1. **Dominated candidates are pruned.** In the sum form a send's score is `w . T_c - cost[channel]`
   with T_c the signed, none-relative terms (`FusionInputs.sum_terms`) and w >= 0. When another send
   of the same opportunity and channel has T at least as large in every objective (and larger in one,
   or equal and earlier), its score is at least as large for every non-negative w, so the argmax never
   picks the pruned one. Exact except for exact score ties, which need a zero weight on every
   objective in which the two differ (a probability-zero event for continuously sampled weights).
2. **Groups are bucketed by their number of kept sends**, so that fusion (`ChannelWeights.send_scores`,
   the same code `fuse` runs) is one matrix-vector product per bucket and the policy one `argmax` along
   a dense axis, with no ragged reductions.
3. **Off-policy estimates use the policy's sparsity**: a deterministic policy matches the logged action
   in a few groups only, and every registered estimator's importance-weighted terms vanish elsewhere, so
   their sums run over those rows (`Estimator.sparse_value`); the direct term is one gather of the reward
   model at the chosen candidates.

The results equal the general path's (tests check decisions and estimates against it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mtr.errors import InputError
from mtr.ope.estimators import Estimator, get_estimator
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.ope.policy_rows import PolicyRows
from mtr.scoring.fusion import ChannelWeights, FusionInputs, check_form, fuse
from mtr.scoring.groups import NONE_CODE
from mtr.scoring.policy import PolicyConfig, PolicyDecision, decide
from mtr.scoring.weights import FusionWeights


@dataclass(frozen=True)
class SendBucket:
    """Opportunities with the same number `s` of kept sends.

    Attributes:
        groups: [G_s] group indices.
        candidates: [G_s, s] global candidate indices of the kept sends, in the original order.
        terms: [K, G_s * s] float32 sum terms of those candidates, objective-major (columns follow `candidates`
            row-major), so that fusion is one BLAS matrix-vector product.
        channel: [G_s * s] int8 channel codes (following `candidates` row-major).
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


class PolicyEvaluator:
    """Decisions, off-policy estimates and true values of fused policies over one logged problem.

    Deterministic sum-form policies without caps take the fast path of the module docstring; any other
    policy (softmax, product form, caps) goes through `fuse` -> `decide` and the estimators' general terms.

    Args:
        inputs: the fusion inputs (candidates and the model's predictions).
        feedback: the logs aligned with the same candidates (rewards incl. send volume, predictions for DR).
        template: fusion settings no trial changes (transform, form, floor, use_value).
        truth: optional [N, K] true reward probabilities per candidate (simulator), same columns as the rewards.
        prune: drop dominated candidates (sum form only; see the module docstring).
        estimators: registered estimators whose per-row terms are prepared here (others on first use).
    """

    def __init__(
        self,
        inputs: FusionInputs,
        feedback: LoggedFeedback,
        template: FusionWeights = FusionWeights(),  # noqa: B008 (immutable)
        truth: np.ndarray | None = None,
        prune: bool = True,
        estimators: Sequence[str] = (),
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
            terms = inputs.sum_terms(template.transform, template.floor, template.use_value)  # [K, N]
            keep = groups.is_send()
            if prune:
                keep &= ~dominated_sends(terms.T, groups.channel, groups.group_of)
            self.kept = int(keep.sum()) + groups.n_groups
            self.buckets = _buckets(terms, groups.channel, groups.group_of, keep, groups.n_groups)
        observed = feedback.mask.astype(np.float64)
        self.n = observed.sum(axis=0)
        self.observed = np.ascontiguousarray(observed.T)  # [K, G]
        self.all_observed = bool(feedback.mask.all())
        # Reward-major [K, N] copies: one contiguous gather per reward is faster than a gather of [N, K] rows.
        self.predicted = None if feedback.predicted is None else np.ascontiguousarray(feedback.predicted.T)
        self.truth_by_reward = None if truth is None else np.ascontiguousarray(truth.T, dtype=np.float64)
        self._logged_terms: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for estimator in map(get_estimator, estimators):  # now rather than in the first trial
            if estimator.applies(self.predicted is not None):
                self._terms(estimator)

    def decide(self, weights: FusionWeights, policy: PolicyConfig) -> PolicyDecision:
        """The policy's decision over every opportunity's candidates (as `decide(fuse(...))` gives it)."""
        groups = self.inputs.groups
        if not self._fast(weights, policy):
            return decide(groups, fuse(self.inputs, weights), policy)
        check_form(self.inputs.objectives, weights)  # the same refusals as `fuse`
        channel_weights = ChannelWeights.of(weights, self.inputs.objectives)
        chosen = groups.starts.copy()
        threshold = np.float32(policy.threshold)
        for bucket in self.buckets:
            scores = channel_weights.send_scores(bucket.terms, bucket.channel)
            size = bucket.candidates.shape[1]
            # First maximum: the earliest candidate, as in `decide`; flat positions avoid 2-D fancy indexing.
            best = scores.reshape(-1, size).argmax(axis=1) + np.arange(0, scores.size, size)
            send = np.take(scores, best) > threshold  # a send must beat "none" (ties go to none, as in `decide`)
            chosen[bucket.groups] = np.where(send, np.take(bucket.candidates, best), chosen[bucket.groups])
        return PolicyDecision(groups, chosen=chosen)

    def _fast(self, weights: FusionWeights, policy: PolicyConfig) -> bool:
        """Whether the buckets serve this trial: a deterministic, uncapped policy over the template's terms."""
        terms = ("form", "transform", "floor", "use_value")
        same = all(getattr(weights, name) == getattr(self.template, name) for name in terms)
        return self.fast and same and policy.cap is None and not policy.stochastic

    def estimate(self, decision: PolicyDecision, estimator: str) -> np.ndarray:
        """[K] a registered estimator's value of each reward per opportunity under `decision`."""
        chosen = get_estimator(estimator)
        if not chosen.applies(self.predicted is not None):
            raise InputError(f"pareto: estimator {estimator!r} needs the model's predictions of every candidate")
        if decision.chosen is None:  # stochastic: every row has a weight
            return chosen.estimate(PolicyRows.of(self.feedback, decision))[0]
        matched = np.flatnonzero(decision.chosen == self.feedback.logged_index)
        direct = self._direct(self.predicted, decision) if chosen.doubly_robust else None
        return chosen.sparse_value(*self._terms(chosen), matched, direct, self.n, self.feedback.bounded)

    def _terms(self, estimator: Estimator) -> tuple[np.ndarray, np.ndarray]:
        """[G, K] weighted values and weights of a policy taking each logged action (w = 1 / mu), once."""
        if estimator.name not in self._logged_terms:
            self._logged_terms[estimator.name] = estimator.logged_terms(*self._logged_inputs)
        return self._logged_terms[estimator.name]

    @cached_property
    def _logged_inputs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """[G, K] inputs of `Estimator.logged_terms` for taking each logged action (weights 1 / mu)."""
        fb = self.feedback
        observed = fb.mask.astype(np.float64)  # shared by every estimator that weights rows equally
        residual = None if fb.predicted is None else fb.rewards - fb.predicted[fb.logged_index]
        return observed * (1.0 / fb.propensity)[:, None], fb.rewards * observed, residual, observed

    def true_value(self, decision: PolicyDecision, within: np.ndarray | None = None) -> np.ndarray:
        """[K] the true mean reward per opportunity (over the same rows as the estimates, or only those of the
        opportunities `within` [G] bool); needs `truth`."""
        if self.truth_by_reward is None:
            raise InputError("pareto: no true probabilities (only the simulator has an oracle)")
        if within is None:
            return self._direct(self.truth_by_reward, decision) / self.n
        observed = self.observed * within  # [K, G]: the observed rows of those opportunities only
        return self._direct(self.truth_by_reward, decision, observed) / observed.sum(axis=1)

    def _direct(
        self, by_reward: np.ndarray, decision: PolicyDecision, observed: np.ndarray | None = None
    ) -> np.ndarray:
        """[K] sum over observed groups (default: the feedback's) of the policy's expectation of a reward-major
        per-candidate table [K, N]."""
        if observed is None:
            observed = self.observed
        if decision.chosen is None:
            return np.einsum("gk,kg->k", decision.expectation(by_reward.T), observed)
        chosen = decision.chosen
        if observed is self.observed and self.all_observed:
            return np.array([np.take(row, chosen).sum(dtype=np.float64) for row in by_reward])
        pairs = zip(by_reward, observed, strict=True)
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
        flat = candidates.ravel()
        buckets.append(SendBucket(groups, candidates, np.ascontiguousarray(terms[:, flat]), channel[flat]))
    return buckets
