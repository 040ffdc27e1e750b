"""A fixed yardstick for a Pareto study on the simulator: regrets and a hypervolume in a box set by the oracle.

The oracle check's hypervolume ratio (`mtr.pareto.oracle_check`) is scaled over the run's own fronts, so it
moves when the run changes. Here everything the result is measured against comes from the truth alone:

- oracle optima: for each objective, a single-objective study on the TRUE values (same sampler, space and
  budget as the run) over the same policy family, truly feasible trials only; "send nothing" is always a
  candidate. Over the family scoring with the model's predictions they give the best the selection could
  reach; over the family scoring with the true probabilities, the best any model could reach.
- selection regret = oracle optimum (model's scores) - the chosen point's truth, in the selected objective;
  model regret = oracle optimum (true scores) - oracle optimum (model's scores).
- fixed box: ideal = the best truth of each objective among the oracle optima and "send nothing"; nadir = the
  worst among them (a constrained minimised objective: its budget, the worst value allowed). A front's
  volume is the share of the box its truly feasible points dominate (points clipped to the box); 1 would be
  one point at the ideal in every objective at once.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import optuna

from mtr.ope.evaluator import PolicyEvaluator
from mtr.pareto.certify import SEND_NOTHING
from mtr.pareto.hypervolume import hypervolume, in_own_sign, normalised
from mtr.pareto.limits import Limits
from mtr.pareto.spec import MAX_PREFIX, Direction, ParetoSpec
from mtr.pareto.study import maximised_matrix, quiet, suggested_decision
from mtr.scoring.fusion import FusionInputs


def truth_of_send_nothing(evaluator: PolicyEvaluator, spec: ParetoSpec) -> dict[str, float]:
    """Every reward's true value per opportunity when nothing is sent."""
    decision = evaluator.decide(spec.weights({}), SEND_NOTHING)
    return dict(zip(evaluator.feedback.reward_names, evaluator.true_value(decision).tolist(), strict=True))


def oracle_optimum(evaluator: PolicyEvaluator, spec: ParetoSpec, objective: str, n_trials: int) -> dict[str, float]:
    """The truth (every reward) of the truly feasible policy best in `objective`, among `n_trials` trials of a
    single-objective study on the truth and "send nothing"."""
    names = evaluator.feedback.reward_names
    direction = spec.objectives[objective]
    space = spec.space()

    def run(trial: optuna.Trial) -> float:
        decision = suggested_decision(trial, evaluator, spec, space)
        truth = dict(zip(names, evaluator.true_value(decision).tolist(), strict=True))
        trial.set_user_attr("truth", truth)
        for limit, slack in spec.limits.slacks(truth, truth).items():
            trial.set_constraint(limit, slack)
        return truth[objective]

    with quiet():  # the study's creation is logged too
        study = optuna.create_study(direction=direction, sampler=spec.sampler.build())
        study.optimize(run, n_trials=n_trials)
    done = [t.user_attrs["truth"] for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))]
    candidates = [t for t in [*done, truth_of_send_nothing(evaluator, spec)] if spec.limits.hold(t)]
    sign = 1.0 if direction == "maximize" else -1.0
    return max(candidates, key=lambda t: sign * t[objective])


def true_score_evaluator(evaluator: PolicyEvaluator, prune: bool) -> PolicyEvaluator:
    """The same problem with the policy family scoring the TRUE probabilities instead of the model's; an objective
    without truth keeps the model's prediction."""
    inputs = evaluator.inputs
    k = len(inputs.objectives)
    true = np.where(np.isnan(evaluator.truth[:, :k]), inputs.probabilities, evaluator.truth[:, :k])
    true_inputs = FusionInputs(inputs.groups, true.astype(inputs.probabilities.dtype), objectives=inputs.objectives)
    return PolicyEvaluator(true_inputs, evaluator.feedback, evaluator.template, evaluator.truth, prune)


def fixed_box(payoff: np.ndarray, objectives: Mapping[str, Direction], limits: Limits) -> np.ndarray:
    """[2, D] (nadir, ideal) of maximised payoff rows [R, D] (oracle optima and "send nothing")."""
    nadir, ideal = payoff.min(axis=0), payoff.max(axis=0)
    for j, (name, direction) in enumerate(objectives.items()):
        if direction == "minimize" and name in limits.caps:
            nadir[j] = -limits.caps[name]  # maximised sign: the budget is the worst value allowed
        if direction == "maximize" and name in limits.floors:
            nadir[j] = limits.floors[name]  # the floor is the worst value allowed
    return np.stack([nadir, ideal])


def box_volume(points: np.ndarray, box: np.ndarray) -> float:
    """Share of the box [2, D] dominated by maximised points [P, D], clipped to the box."""
    nadir, ideal = box
    inside = np.clip(points, nadir, ideal)
    return hypervolume(normalised(inside, nadir, ideal), np.zeros(len(nadir)))


def yardstick(
    evaluator: PolicyEvaluator,
    spec: ParetoSpec,
    n_trials: int,
    chosen_truth: Mapping[str, float],
    front_truths: list[Mapping[str, float]],
) -> dict:
    """The fixed yardstick of the module docstring for the chosen point and the run's certified front.

    Args:
        evaluator: the problem, with truth.
        spec: the resolved spec of the run.
        n_trials: budget of each oracle study.
        chosen_truth: the operating point's true values.
        front_truths: the true values of the run's certified front.
    """
    objectives, limits = spec.objectives, spec.limits
    nothing = truth_of_send_nothing(evaluator, spec)
    optima = {name: oracle_optimum(evaluator, spec, name, n_trials) for name in objectives}
    box = fixed_box(maximised_matrix([nothing, *optima.values()], objectives), objectives, limits)
    feasible_front = [t for t in front_truths if limits.hold(t)]
    out: dict = {
        "box_nadir": in_own_sign(box[0], objectives),
        "box_ideal": in_own_sign(box[1], objectives),
        "send_nothing_truth": nothing,
        "oracle_optima": optima,
        "chosen_truly_feasible": limits.hold(chosen_truth),
        "chosen_box_hypervolume": box_volume(maximised_matrix([chosen_truth], objectives), box)
        if limits.hold(chosen_truth)
        else 0.0,
        "front_box_hypervolume": box_volume(maximised_matrix(feasible_front, objectives), box),
        "oracle_box_hypervolume": box_volume(maximised_matrix(list(optima.values()), objectives), box),
    }
    if spec.selection.startswith(MAX_PREFIX):
        name = spec.selection.removeprefix(MAX_PREFIX)
        sign = 1.0 if objectives[name] == "maximize" else -1.0
        best_model = optima[name][name]
        best_true = oracle_optimum(true_score_evaluator(evaluator, spec.prune), spec, name, n_trials)[name]
        out["regret"] = {
            "objective": name,
            "chosen_truth": chosen_truth[name],
            "oracle_model_scores": best_model,
            "oracle_true_scores": best_true,
            "selection_regret": sign * (best_model - chosen_truth[name]),
            "model_regret": sign * (best_true - best_model),
        }
    return out
