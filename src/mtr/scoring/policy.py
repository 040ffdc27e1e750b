"""The sending policy: rank each opportunity's candidates, "send nothing" included, and pick one.

Scores follow the fusion convention (none = 0, a send's score is relative to not sending). The
threshold is the margin a send must clear: the deterministic policy sends the best candidate when its
score exceeds `threshold`, otherwise sends nothing; the softmax policy gives "none" the logit
`threshold / temperature`, so it is the soft version of the same rule. Either way the result carries
the action probabilities off-policy evaluation needs.

Frequency caps ("at most `max_sends` per user and channel in any `window_days` days") make a decision
depend on the policy's own earlier decisions. They are applied day by day in time order, vectorised
over the day's users, for the deterministic policy. Limitation: the counterfactual history the caps
see is the target policy's, while the logs (and the features, such as recent send counts) were
collected under the logging policy's history; off-policy evaluation of a capped policy is therefore
a one-step approximation that ignores how the policy's own sends would have changed later states.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mtr.errors import InputError
from mtr.scoring.groups import NONE_CODE, CandidateGroups


@dataclass(frozen=True)
class FrequencyCap:
    """At most `max_sends` sends per user and channel in any window of `window_days` consecutive days.

    Args:
        max_sends: allowed sends per user and channel within the window.
        window_days: window length in days (a send on day d counts for days d .. d + window_days - 1).
    """

    max_sends: int = 1
    window_days: int = 7

    def __post_init__(self) -> None:
        if self.max_sends < 1 or self.window_days < 1:
            raise InputError(
                f"frequency cap: max_sends and window_days must be at least 1, got {self.max_sends}, {self.window_days}"
            )


@dataclass(frozen=True)
class PolicyConfig:
    """How scores become actions.

    Args:
        threshold: margin a send's score must exceed to be preferred over sending nothing.
        temperature: None for the deterministic argmax; a positive number for a softmax over the
            group's scores (none's logit is threshold / temperature).
        cap: optional frequency cap (deterministic policy only).
    """

    threshold: float = 0.0
    temperature: float | None = None
    cap: FrequencyCap | None = None

    def __post_init__(self) -> None:
        if self.temperature is not None and not self.temperature > 0:
            raise InputError(f"policy: field 'temperature' must be positive or None, got {self.temperature}")
        if self.temperature is not None and self.cap is not None:
            raise InputError("policy: frequency caps are supported for the deterministic policy (temperature None)")

    @property
    def stochastic(self) -> bool:
        return self.temperature is not None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, source: str = "policy") -> PolicyConfig:
        """Build from the JSON / YAML form (threshold, temperature, cap); a bad field raises naming it."""
        raw = dict(raw or {})
        _reject_unknown(raw, cls, source)
        if raw.get("cap") is not None:
            _reject_unknown(raw["cap"], FrequencyCap, f"{source}.cap")
            raw["cap"] = FrequencyCap(**raw["cap"])
        try:
            return cls(**raw)
        except (TypeError, ValueError) as error:
            raise InputError(f"{source}: {error}") from error

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PolicyDecision:
    """A policy's action distribution over every group's candidates.

    Exactly one of `chosen` (deterministic) and `probabilities` (stochastic) is set.

    Attributes:
        groups: the candidate structure.
        chosen: [G] global index of the chosen candidate of each group.
        probabilities: [N] probability of each candidate; sums to 1 within each group.
    """

    groups: CandidateGroups
    chosen: np.ndarray | None = None
    probabilities: np.ndarray | None = None

    def probability_of(self, index: np.ndarray) -> np.ndarray:
        """[G] probability of the candidate `index[g]` (a global index inside group g)."""
        if self.chosen is not None:
            return (self.chosen == index).astype(np.float64)
        return self.probabilities[index].astype(np.float64)

    def expectation(self, values: np.ndarray) -> np.ndarray:
        """[G, K] expected value of per-candidate `values` [N, K] under the policy."""
        if self.chosen is not None:
            return values[self.chosen].astype(np.float64)
        return self.groups.group_sum(self.probabilities[:, None] * values).astype(np.float64)

    def dense(self) -> np.ndarray:
        """[N] probability of every candidate (materialised for deterministic policies)."""
        if self.probabilities is not None:
            return self.probabilities
        probabilities = np.zeros(self.groups.n_candidates)
        probabilities[self.chosen] = 1.0
        return probabilities

    def send_rate(self) -> float:
        """Share of opportunities with a send (expected, for a stochastic policy)."""
        none = self.probability_of(self.groups.starts)
        return float(1.0 - none.mean())


def decide(groups: CandidateGroups, scores: np.ndarray, config: PolicyConfig) -> PolicyDecision:
    """Turn fused scores into a policy.

    Args:
        groups: the candidate structure.
        scores: [N] fused scores (none = 0).
        config: threshold, temperature and frequency cap.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.shape != (groups.n_candidates,):
        raise InputError(f"policy: scores must be [{groups.n_candidates}], got {list(scores.shape)}")
    if not np.all(np.isfinite(scores)):
        raise InputError(f"policy: {int((~np.isfinite(scores)).sum())} scores are not finite numbers")
    logits = scores.copy()
    logits[groups.starts] = config.threshold  # a send must beat the threshold to beat "none"
    if config.temperature is not None:
        return PolicyDecision(groups, probabilities=_softmax(groups, logits / np.float32(config.temperature)))
    if config.cap is not None:
        return PolicyDecision(groups, chosen=_capped_argmax(groups, logits, config.cap))
    return PolicyDecision(groups, chosen=groups.group_argmax(logits))


def opportunity_probabilities(
    group_starts: np.ndarray, channel: np.ndarray, scores: np.ndarray, config: PolicyConfig
) -> np.ndarray:
    """[N] float32 action probability of each candidate under `config`, computed by `decide`.

    Args:
        group_starts: [G + 1] position of each opportunity's first candidate, then N (candidates listed
            opportunity by opportunity, the "none" candidate anywhere in its opportunity).
        channel: [N] channel codes.
        scores: [N] fused scores.
        config: the policy; frequency caps are not applied, because they need each user's earlier sends,
            which a list of candidates does not hold.
    """
    sizes = np.diff(group_starts)
    group = np.repeat(np.arange(sizes.size), sizes)
    order = np.lexsort((channel != NONE_CODE, group))  # "none" first in each opportunity, the rest stable
    groups = CandidateGroups.build(sizes, channel[order], np.arange(sizes.size), np.zeros(sizes.size))
    probabilities = np.empty(channel.size, dtype=np.float32)
    probabilities[order] = decide(groups, scores[order], dataclasses.replace(config, cap=None)).dense()
    return probabilities


def _reject_unknown(raw: Mapping[str, Any], cls: type, source: str) -> None:
    unknown = sorted(set(raw) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise InputError(f"{source}: unknown field(s) {unknown}")


def _softmax(groups: CandidateGroups, logits: np.ndarray) -> np.ndarray:
    """[N] per-group softmax, stabilised by each group's max."""
    exp = np.exp(logits - groups.group_max(logits)[groups.group_of])
    return exp / groups.group_sum(exp)[groups.group_of]


def _capped_argmax(groups: CandidateGroups, logits: np.ndarray, cap: FrequencyCap) -> np.ndarray:
    """[G] argmax per group, day by day, skipping channels a user has used `max_sends` times in the window."""
    n_users = int(groups.user.max()) + 1 if groups.n_groups else 0
    # The max_sends most recent send days per user and send channel, oldest first; "never" is far in the past.
    recent = np.full((n_users, NONE_CODE, cap.max_sends), np.iinfo(np.int64).min // 2, dtype=np.int64)
    chosen = np.empty(groups.n_groups, dtype=np.int64)
    day_starts = np.flatnonzero(np.r_[True, groups.day[1:] != groups.day[:-1]])
    for first, last in zip(day_starts, np.r_[day_starts[1:], groups.n_groups], strict=True):
        day = groups.day[first]
        sub, keep = groups.subset(np.arange(first, last))
        users = groups.user[first:last]
        send = sub.channel != NONE_CODE
        channel = np.where(send, sub.channel, 0)
        oldest = recent[users[sub.group_of], channel, 0]
        capped = send & (oldest > day - cap.window_days)
        day_logits = np.where(capped, -np.inf, logits[keep])
        pick = sub.group_argmax(day_logits)
        chosen[first:last] = keep[pick]
        sent = sub.channel[pick] != NONE_CODE
        user, used = users[sent], sub.channel[pick][sent]
        recent[user, used, :-1] = recent[user, used, 1:]
        recent[user, used, -1] = day
    return chosen
