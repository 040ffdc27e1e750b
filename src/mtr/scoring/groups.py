"""Candidate groups: every opportunity's candidate actions as one flat, opportunity-major array layout.

Fusion, the policy and off-policy evaluation all work on flat per-candidate arrays `[N]` plus this
structure, computed once per candidate table, so that one Optuna trial never rebuilds it. The layout
is compressed sparse rows: group `g` (one opportunity) owns candidates `offsets[g] : offsets[g + 1]`,
and its first candidate is always "send nothing".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from mtr.errors import InputError
from mtr.schema import CHANNELS, NO_SEND

# Channel codes of candidates: the send channels in schema order, then "none".
CHANNEL_CODES = (*CHANNELS, NO_SEND)
NONE_CODE = len(CHANNELS)


@dataclass(frozen=True)
class CandidateGroups:
    """The group structure of N candidates in G opportunities.

    Attributes:
        offsets: [G + 1] int64, group g's candidates are `offsets[g] : offsets[g + 1]`.
        channel: [N] int8 channel code (index into `CHANNEL_CODES`; NONE_CODE is "send nothing").
        group_of: [N] int64, the group of each candidate.
        user: [G] int64 user index (0..n_users-1) of each opportunity, for frequency caps.
        day: [G] int64 day of each opportunity (non-decreasing), for frequency caps.
    """

    offsets: np.ndarray
    channel: np.ndarray
    group_of: np.ndarray
    user: np.ndarray
    day: np.ndarray

    @classmethod
    def build(cls, group_sizes: np.ndarray, channel: np.ndarray, user: np.ndarray, day: np.ndarray) -> CandidateGroups:
        """Check and index a layout.

        Args:
            group_sizes: [G] candidates per opportunity, each at least 1 (the none candidate).
            channel: [N] channel codes, N = sum(group_sizes); each group's first is NONE_CODE, no other is.
            user: [G] user index per opportunity.
            day: [G] day per opportunity, non-decreasing (groups are in time order).
        """
        sizes = np.asarray(group_sizes, dtype=np.int64)
        channel = np.asarray(channel, dtype=np.int8)
        if sizes.ndim != 1 or sizes.size == 0 or np.any(sizes < 1):
            raise InputError("candidate groups: every opportunity needs at least its 'none' candidate")
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        if channel.shape != (offsets[-1],):
            raise InputError(f"candidate groups: {channel.shape[0]} channel codes for {offsets[-1]} candidates")
        is_none = channel == NONE_CODE
        if not np.all(is_none[offsets[:-1]]) or is_none.sum() != sizes.size:
            raise InputError("candidate groups: each opportunity's first candidate, and only it, must be 'none'")
        day = np.asarray(day, dtype=np.int64)
        if np.any(np.diff(day) < 0):
            raise InputError("candidate groups: opportunities must be in time order (day non-decreasing)")
        group_of = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
        return cls(offsets, channel, group_of, np.asarray(user, dtype=np.int64), day)

    @property
    def n_groups(self) -> int:
        return self.offsets.size - 1

    @property
    def n_candidates(self) -> int:
        return int(self.offsets[-1])

    @property
    def starts(self) -> np.ndarray:
        """[G] index of each group's first candidate, its "none"."""
        return self.offsets[:-1]

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def is_send(self) -> np.ndarray:
        """[N] bool, True for send candidates."""
        return self.channel != NONE_CODE

    def group_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum over each group's candidates: [N, ...] -> [G, ...]."""
        return np.add.reduceat(values, self.starts, axis=0)

    def group_max(self, values: np.ndarray) -> np.ndarray:
        """Max over each group's candidates: [N] -> [G]."""
        return np.maximum.reduceat(values, self.starts)

    def group_argmax(self, values: np.ndarray) -> np.ndarray:
        """[G] global index of each group's maximum of `values` [N]; ties go to the earliest candidate."""
        is_max = values >= self.group_max(values)[self.group_of]
        index = np.flatnonzero(is_max)
        group = self.group_of[index]
        first = np.ones(index.size, dtype=bool)
        first[1:] = group[1:] != group[:-1]
        return index[first]

    def subset(self, groups: np.ndarray) -> tuple[CandidateGroups, np.ndarray]:
        """The structure of some groups (in the given order) and the [N'] candidate indices they keep."""
        groups = np.asarray(groups, dtype=np.int64)
        sizes = self.sizes[groups]
        # Candidate positions of every kept group, without a per-group Python loop.
        within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        keep = np.repeat(self.starts[groups], sizes) + within
        return CandidateGroups.build(sizes, self.channel[keep], self.user[groups], self.day[groups]), keep


def channel_codes(channel: pl.Series) -> np.ndarray:
    """[N] channel names ("push", ..., "none") -> int8 codes; unknown names raise naming them."""
    unknown = channel.filter(~channel.is_in(list(CHANNEL_CODES)) | channel.is_null())
    if unknown.len():
        raise InputError(
            f"column 'channel' has unknown channels {unknown.unique().to_list()[:5]} (allowed: {list(CHANNEL_CODES)})"
        )
    return channel.replace_strict(list(CHANNEL_CODES), list(range(len(CHANNEL_CODES))), return_dtype=pl.Int8).to_numpy()
