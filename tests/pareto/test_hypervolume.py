"""Exact hypervolume and Pareto masks on known answers and against a brute-force cell count."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mtr.pareto.hypervolume import as_maximised, hypervolume, pareto_mask


def brute_force(points: np.ndarray, reference: np.ndarray) -> float:
    """Sum the volumes of the grid cells (cut at every coordinate) that some point dominates."""
    axes = [np.unique(np.r_[reference[d], points[:, d]]) for d in range(points.shape[1])]
    volume = 0.0
    for cell in itertools.product(*[range(a.size - 1) for a in axes]):
        upper = np.array([axes[d][i + 1] for d, i in enumerate(cell)])
        if (points >= upper).all(axis=1).any():
            volume += np.prod([axes[d][i + 1] - axes[d][i] for d, i in enumerate(cell)])
    return float(volume)


def test_two_boxes_in_the_plane():
    assert hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), np.zeros(2)) == pytest.approx(3.0)


def test_one_point_is_a_box_and_points_below_the_reference_add_nothing():
    points = np.array([[1.0, 2.0, 3.0, 0.5], [-1.0, 5.0, 5.0, 5.0]])
    assert hypervolume(points, np.zeros(4)) == pytest.approx(3.0)
    assert hypervolume(points[1:], np.zeros(4)) == 0.0


def test_dominated_points_change_nothing():
    front = np.array([[3.0, 1.0, 2.0], [1.0, 3.0, 1.0], [2.0, 2.0, 2.0]])
    with_dominated = np.vstack([front, [[1.0, 1.0, 1.0], [2.0, 2.0, 1.5]]])
    assert hypervolume(with_dominated, np.zeros(3)) == pytest.approx(hypervolume(front, np.zeros(3)))


@pytest.mark.parametrize("dims", [3, 4])
def test_random_points_match_the_brute_force_count(dims):
    rng = np.random.default_rng(dims)
    for _ in range(5):
        points = rng.uniform(0, 1, (7, dims))
        assert hypervolume(points, np.zeros(dims)) == pytest.approx(brute_force(points, np.zeros(dims)))


def test_pareto_mask_and_minimised_objectives():
    # (maximise, minimise): (2, 1) dominates (1, 2); (3, 3) trades off; duplicates are all kept.
    values = np.array([[2.0, 1.0], [1.0, 2.0], [3.0, 3.0], [2.0, 1.0]])
    np.testing.assert_array_equal(pareto_mask(as_maximised(values, [True, False])), [True, False, True, True])
