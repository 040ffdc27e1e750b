"""The oracle check of a Pareto study on the simulator: the front found from estimates against the true front.

Every trial of the estimated study also records its policy's TRUE value per opportunity (the oracle's
probabilities of the chosen candidates; never seen by the sampler). A second study with the same
sampler, space and budget optimises the true values directly. Then:

- found front: the trials the estimated study calls feasible and non-dominated, at their TRUE values;
  a point that breaks a constraint in truth counts for nothing;
- true front: the non-dominated, truly feasible points among the true values of both studies' trials
  (the best front known, so the ratio is at most 1);
- both are scaled per objective to [0, 1] over the union of the two fronts (minimised objectives
  flipped), the reference point is -0.1 in every objective, and the hypervolume ratio found / true is
  reported (goal: at least 0.95).
"""

from __future__ import annotations

import numpy as np
import optuna

from mtr.ope.evaluator import PolicyEvaluator
from mtr.pareto.hypervolume import hypervolume, in_own_sign, normalised, pareto_mask
from mtr.pareto.spec import ParetoSpec
from mtr.pareto.study import TrialRecord, completed, objective_matrix, run_study

REFERENCE = -0.1


def oracle_check(
    evaluator: PolicyEvaluator, spec: ParetoSpec, n_trials: int, found: list[TrialRecord], estimated: list
) -> dict:
    """Hypervolume ratio of the found front's true values to the true front (see the module docstring).

    Args:
        evaluator: the problem, with truth.
        spec: the study's spec (the reference study uses the same sampler, space and budget).
        n_trials: budget of the reference study.
        found: the estimated study's feasible front (records with "truth").
        estimated: all completed records of the estimated study.
    """
    reference_study = optuna.create_study(directions=list(spec.objectives.values()))
    run_study(reference_study, evaluator, spec, n_trials, on_truth=True)
    objectives = spec.objectives
    candidates = [
        r for r in [*completed(reference_study), *estimated] if r.truth is not None and spec.limits.hold(r.truth)
    ]
    true_points = objective_matrix(candidates, objectives, "truth")
    true_front = true_points[pareto_mask(true_points)] if len(candidates) else true_points
    kept = [r for r in found if r.truth and spec.limits.hold(r.truth)]
    found_points = objective_matrix(kept, objectives, "truth")
    both = np.vstack([true_front, found_points])
    if both.shape[0] == 0:
        return {"skipped": "no policy tried, on the truth or the estimates, meets the limits in truth"}
    low, high = both.min(axis=0), both.max(axis=0)
    reference = np.full(len(objectives), REFERENCE)
    true_volume = hypervolume(normalised(true_front, low, high), reference)
    found_volume = hypervolume(normalised(found_points, low, high), reference)
    return {
        "hypervolume_ratio": found_volume / true_volume if true_volume > 0 else None,
        "hypervolume_found": found_volume,
        "hypervolume_true": true_volume,
        "found_front_size": len(found),
        "found_front_truly_infeasible": len(found) - len(kept),
        "true_front_size": int(true_front.shape[0]),
        "reference_study_trials": n_trials,
        "reference_point": REFERENCE,
        "scale_low": in_own_sign(low, objectives),
        "scale_high": in_own_sign(high, objectives),
    }


def estimate_errors(records: list[TrialRecord], rewards: list[str]) -> dict[str, dict[str, float]]:
    """Per reward, over the records: mean relative error (estimate - truth) / truth and mean absolute error."""
    out: dict[str, dict[str, float]] = {}
    for reward in rewards if records else ():  # an empty front (nothing certified) has no errors to average
        estimate = np.array([r.estimates[reward] for r in records])
        truth = np.array([r.truth[reward] for r in records])
        relative = (estimate - truth) / np.where(truth != 0, truth, np.nan)
        out[reward] = {
            "mean_relative_error": float(np.nanmean(relative)),
            "mean_absolute_relative_error": float(np.nanmean(np.abs(relative))),
            "mean_absolute_error": float(np.mean(np.abs(estimate - truth))),
        }
    return out
