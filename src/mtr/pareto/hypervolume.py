"""Pareto fronts and their exact hypervolume, for a few hundred points in a few dimensions.

Everything here works on maximised objectives: flip minimised ones first (`as_maximised`). The
hypervolume of a set of points above a reference point r is the volume of the union of the boxes
[r, p]; it is computed exactly by slicing along the last objective (the "HSO" recursion): between two
consecutive distinct values of the last objective, the dominated region is the hypervolume, in one
dimension fewer, of the points that reach beyond the slice. That is O(P^(D-1)) boxes, instant for the
few dozen points of a front in four dimensions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mtr.errors import InputError


def as_maximised(values: np.ndarray, maximise: Sequence[bool]) -> np.ndarray:
    """[P, D] objective values with the minimised columns negated, so that larger is better in every column."""
    signs = np.where(np.asarray(maximise, dtype=bool), 1.0, -1.0)
    return np.asarray(values, dtype=np.float64) * signs


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """[P] True for the points of [P, D] (maximised) that no other point dominates.

    A point dominates another when it is at least as good in every objective and better in one. Of
    exact duplicates, all are kept.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise InputError(f"pareto front: points must be [P, D], got shape {list(points.shape)}")
    at_least = (points[:, None, :] >= points[None, :, :]).all(axis=2)  # [i, j]: i >= j everywhere
    better = (points[:, None, :] > points[None, :, :]).any(axis=2)
    dominated = (at_least & better).any(axis=0)
    return ~dominated


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    """Exact hypervolume dominated by maximised points [P, D] above `reference` [D].

    Points that do not exceed the reference in every objective add nothing and are dropped.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, np.size(reference))
    reference = np.asarray(reference, dtype=np.float64)
    points = points[(points > reference).all(axis=1)]
    if points.shape[0] == 0:
        return 0.0
    return _slice_volume(points[pareto_mask(points)], reference)


def _slice_volume(points: np.ndarray, reference: np.ndarray) -> float:
    """HSO recursion over the last objective; `points` are all above `reference`."""
    if points.shape[1] == 1:
        return float(points[:, 0].max() - reference[0])
    last = points[:, -1]
    levels = np.unique(last)[::-1]  # from the best value of the last objective down
    volume = 0.0
    for upper, lower in zip(levels, [*levels[1:], reference[-1]], strict=True):
        # The slab (lower, upper] of the last objective is covered by every point reaching at least `upper`.
        reaching = points[last >= upper, :-1]
        if reaching.shape[0] > 1:
            reaching = reaching[pareto_mask(reaching)]
        volume += (upper - lower) * _slice_volume(reaching, reference[:-1])
    return volume


def normalised(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Scale maximised points so that `low` maps to 0 and `high` to 1 in each objective (flat ones stay 0)."""
    span = np.where(high > low, high - low, 1.0)
    return (np.asarray(points, dtype=np.float64) - low) / span


def in_own_sign(maximised: np.ndarray, directions: Mapping[str, str]) -> dict[str, float]:
    """[D] maximised values back in each objective's own sign, by name (`directions`: name -> maximize/minimize)."""
    return {
        name: float(v if d == "maximize" else -v) for (name, d), v in zip(directions.items(), maximised, strict=True)
    }
