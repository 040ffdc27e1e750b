"""The logs as off-policy evaluation reads them: candidates, logged actions, propensities, rewards, predictions.

Send volume is a reward too: r = 1 when the logged action is a send, and its reward model is exact.
Binary rewards (0/1 labels and send volume) are flagged, so that their estimates stay within [0, 1].
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from mtr.errors import InputError
from mtr.objectives import Objective
from mtr.scoring.groups import CandidateGroups

SEND_VOLUME = "send_volume"


@dataclass(frozen=True)
class LoggedFeedback:
    """The logs, aligned with a candidate structure, with everything OPE needs that no policy changes.

    Args:
        groups: the candidate structure; group g is logged opportunity g.
        logged_index: [G] global candidate index of the logged action.
        propensity: [G] logging policy's probability of the logged action, in (0, 1].
        rewards: [G, K] observed rewards (0 where missing).
        mask: [G, K] bool, True where the reward is observed.
        predicted: [N, K] reward model's prediction for every candidate (for DR), or None.
        reward_names: K names.
        binary: K flags, True for a 0/1 reward (its estimates are kept in [0, 1]); None: no reward's range
            is known and no estimate is bounded.
    """

    groups: CandidateGroups
    logged_index: np.ndarray
    propensity: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    predicted: np.ndarray | None
    reward_names: tuple[str, ...]
    binary: tuple[bool, ...] | None = None

    def __post_init__(self) -> None:
        g, k = self.groups.n_groups, len(self.reward_names)
        if self.logged_index.shape != (g,) or self.propensity.shape != (g,):
            raise InputError(f"logged feedback: logged_index and propensity must be [{g}]")
        if self.rewards.shape != (g, k) or self.mask.shape != (g, k):
            raise InputError(f"logged feedback: rewards and mask must be [{g}, {k}] ({list(self.reward_names)})")
        inside = (self.logged_index >= self.groups.starts) & (self.logged_index < self.groups.offsets[1:])
        if not np.all(inside):
            raise InputError(f"logged feedback: {int((~inside).sum())} logged actions are not among their candidates")
        if not np.all((self.propensity > 0) & (self.propensity <= 1)):
            raise InputError("logged feedback: column 'propensity' must be in (0, 1] (logged actions need support)")
        if self.predicted is not None and self.predicted.shape != (self.groups.n_candidates, k):
            raise InputError(f"logged feedback: predicted rewards must be [{self.groups.n_candidates}, {k}]")
        if self.binary is not None:
            if len(self.binary) != k:
                raise InputError(f"logged feedback: binary must have one flag per reward ({list(self.reward_names)})")
            outside = self.mask & ((self.rewards < 0) | (self.rewards > 1)) & np.array(self.binary)
            if outside.any():
                name = self.reward_names[int(np.flatnonzero(outside.any(axis=0))[0])]
                raise InputError(f"logged feedback: rewards of binary reward '{name}' must be in [0, 1]")

    @property
    def bounded(self) -> np.ndarray:
        """[K] True for the rewards whose estimates must stay in [0, 1]."""
        return np.zeros(len(self.reward_names), dtype=bool) if self.binary is None else np.array(self.binary)

    @cached_property
    def by_reward(self) -> tuple[np.ndarray, np.ndarray]:
        """[K, G] float64 masks and masked rewards, reward-major (computed once)."""
        observed = np.ascontiguousarray(self.mask.T, dtype=np.float64)
        return observed, np.ascontiguousarray(self.rewards.T, dtype=np.float64) * observed

    @cached_property
    def logged_prediction(self) -> np.ndarray:
        """[K, G] the reward model's prediction for each logged action (needs `predicted`)."""
        return np.ascontiguousarray(self.predicted[self.logged_index].T, dtype=np.float64)

    def with_send_volume(self) -> LoggedFeedback:
        """The same logs with one more reward, send volume (exactly modelled: 1 for sends)."""
        is_send = self.groups.is_send()
        rewards = np.column_stack([self.rewards, is_send[self.logged_index]])
        mask = np.column_stack([self.mask, np.ones(self.groups.n_groups, dtype=bool)])
        predicted = None if self.predicted is None else np.column_stack([self.predicted, is_send])
        names = (*self.reward_names, SEND_VOLUME)
        binary = (*self.bounded.tolist(), True)
        return LoggedFeedback(self.groups, self.logged_index, self.propensity, rewards, mask, predicted, names, binary)


def binary_rewards(objectives: Iterable[Objective]) -> tuple[bool, ...]:
    """The `binary` flags of an objective table's rewards: 0/1 labels are bounded, continuous values are not."""
    return tuple(objective.kind == "binary" for objective in objectives)
