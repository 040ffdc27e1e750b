"""The Pareto study: an Optuna multi-objective search over fusion weights, send cost and the policy.

A trial draws the searched objective weights, send cost, threshold and (for a softmax policy) temperature,
turns the model's predictions into a policy, and scores it by an off-policy estimate of each objective per
opportunity and its standard error (any registered estimator) on the selection part of the logs
(`mtr.pareto.certify`). Constraints (budgets on rewards, e.g. unsubscribes or send volume) are judged on
the upper bound estimate + z * SE and go through `Trial.set_constraint`, which the NSGA-II and TPE samplers
honour and `Study.best_trials` respects: a trial that meets them is "certified" (`TrialRecord.feasible`).

The study lives in its storage: processes started with the same study name and storage share it, and
a re-run resumes it; `n_trials` is the study's total target, not per process.

Selection rules for the one operating point written to weights.json (`mtr.pareto.spec` has the defaults):
- "max_<objective>": the certified trial with the highest lower bound estimate - z * SE of that objective
  (the lowest upper bound of a minimised one; ties: lowest trial number).
- "knee": on the certified Pareto front of the estimates, each objective is scaled to [0, 1] over the front (1 = best,
  minimised ones flipped); the knee is the point closest (Euclidean) to the utopia point (1, ..., 1).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from mtr.errors import InputError
from mtr.ope.evaluator import PolicyEvaluator
from mtr.ope.logged_feedback import LoggedFeedback
from mtr.pareto.certify import estimates_on, slacks
from mtr.pareto.hypervolume import as_maximised, normalised, pareto_mask
from mtr.pareto.spec import KNEE, MAX_PREFIX, Direction, ParetoSpec
from mtr.scoring.policy import PolicyDecision
from mtr.studies.space import Param
from mtr.studies.storage import open_storage

# A trial's target counts trials that ran to the end: a trial whose estimate is undefined (SNIPS with no
# matched row) fails, and must count, or a study on a degenerate problem would never stop.
DONE = (TrialState.COMPLETE, TrialState.FAIL)


def open_study(spec: ParetoSpec, study_name: str, storage: str | None) -> optuna.Study:
    """Create the study or load it for a resume; a stored study with other objectives is refused.

    `spec` must be resolved (`ParetoSpec.resolve`): its objectives name the study's directions."""
    if not spec.objectives:
        raise InputError("pareto: the spec has no objectives yet (resolve it against the problem first)")
    directions = list(spec.objectives.values())
    opened = None if storage is None else open_storage(storage)
    study = optuna.create_study(storage=opened, study_name=study_name, directions=directions, load_if_exists=True)
    stored = [d.name.lower() for d in study.directions]
    if stored != directions:
        raise InputError(f"study_name: study '{study_name}' has directions {stored}, the config {directions}")
    # What a stored trial's scores depend on: a resume with other settings would mix trials scored on other
    # users, by another estimator, or judged at another z (and a study stored before certified selection
    # has no standard errors at all).
    settings = {
        "objectives": list(spec.objectives),
        "estimator": spec.estimator,
        "holdout": spec.holdout,
        "split_seed": spec.split_seed,
        "z": spec.z,
    }
    if study.trials and "holdout" not in study.user_attrs:
        raise InputError(
            f"study_name: study '{study_name}' was stored before certified selection (its trials have no "
            "standard errors); use another study_name or storage"
        )
    for name, value in settings.items():
        stored_value = study.user_attrs.get(name)
        if stored_value is None:
            study.set_user_attr(name, value)
        elif stored_value != value:
            raise InputError(f"{name}: study '{study_name}' was run with {stored_value!r}, the config has {value!r}")
    return study


def run_study(
    study: optuna.Study,
    evaluator: PolicyEvaluator,
    spec: ParetoSpec,
    n_trials: int,
    record_truth: bool = False,
    on_truth: bool = False,
    estimate_on: LoggedFeedback | None = None,
) -> int:
    """Run trials until the study holds `n_trials` finished ones; returns how many this process ran.

    Args:
        study: the (shared) study.
        evaluator: the precomputed problem (decisions and truth over all its opportunities).
        spec: space, objectives, constraints, estimator, z.
        n_trials: the study's total target.
        record_truth: store each trial's true values as the user attribute "truth" (never seen by the sampler).
        on_truth: optimise the true values instead of the estimates (the oracle's reference study).
        estimate_on: the logs the estimates use (the selection part); default: all of the evaluator's.
    """
    names = evaluator.feedback.reward_names
    spec = spec.resolve(evaluator.inputs.objectives, names)
    space = spec.space()
    feedback = estimate_on or evaluator.feedback
    done = len(study.get_trials(deepcopy=False, states=DONE))
    if done >= n_trials:
        return 0
    study.sampler = spec.sampler.build(len(study.get_trials(deepcopy=False)))

    def objective(trial: optuna.Trial) -> list[float]:
        decision = suggested_decision(trial, evaluator, spec, space)
        if record_truth or on_truth:
            truth = dict(zip(names, evaluator.true_value(decision).tolist(), strict=True))
            trial.set_user_attr("truth", truth)
        if on_truth:
            scored, slack = truth, spec.limits.slacks(truth, truth)
        else:
            found = estimates_on(feedback, decision, spec.estimator)
            scored = {name: e.value for name, e in found.items()}
            trial.set_user_attr("estimates", scored)
            trial.set_user_attr("standard_errors", {name: e.standard_error for name, e in found.items()})
            slack = slacks(found, spec.limits, spec.z)
        for limit, value in slack.items():
            trial.set_constraint(limit, value)
        return [scored[name] for name in spec.objectives]

    ran: list[int] = []
    with quiet():
        study.optimize(
            objective,
            n_trials=n_trials - done,
            callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=DONE), lambda _, t: ran.append(t.number)],
            show_progress_bar=sys.stderr.isatty(),
        )
    return len(ran)


def suggested_decision(
    trial: optuna.Trial, evaluator: PolicyEvaluator, spec: ParetoSpec, space: tuple[Param, ...]
) -> PolicyDecision:
    """The decision of the weights and policy the trial suggests."""
    values = {param.key: float(param.suggest(trial)) for param in space}
    return evaluator.decide(spec.weights(values), spec.policy_config(values))


@contextmanager
def quiet() -> Iterator[None]:
    """Optuna without its line per trial (it drowns the summary; trials.csv has them) and without the warning of
    NaN objectives (no matched rows), which are recorded as failed trials."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


@dataclass(frozen=True)
class TrialRecord:
    """One completed trial as the outputs show it; `feasible`: certified (upper bounds within budget)."""

    number: int
    params: dict[str, float]
    estimates: dict[str, float]
    truth: dict[str, float] | None
    feasible: bool
    standard_errors: dict[str, float] = field(default_factory=dict)

    def bound(self, name: str, direction: Direction, z: float) -> float:
        """The pessimistic end of the estimate's interval: estimate - z SE when maximised, + z SE when minimised."""
        half = z * self.standard_errors[name] if z else 0.0
        return self.estimates[name] - half if direction == "maximize" else self.estimates[name] + half


def completed(study: optuna.Study) -> list[TrialRecord]:
    """The study's completed trials, in number order."""
    return [_record(t) for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]


def _record(trial: FrozenTrial) -> TrialRecord:
    return TrialRecord(
        trial.number,
        dict(trial.params),
        dict(trial.user_attrs.get("estimates", {})),
        trial.user_attrs.get("truth"),
        all(v <= 0 for v in trial.constraints.values()),
        dict(trial.user_attrs.get("standard_errors", {})),
    )


def objective_matrix(records: list[TrialRecord], objectives: Mapping[str, Direction], source: str) -> np.ndarray:
    """[P, D] maximised objective values of records, from their "estimates" or "truth"."""
    return maximised_matrix([getattr(r, source) for r in records], objectives)


def maximised_matrix(rows: list[Mapping[str, float]], objectives: Mapping[str, Direction]) -> np.ndarray:
    """[P, D] maximised values of the objectives, one row per mapping of values."""
    values = np.array([[row[name] for name in objectives] for row in rows], dtype=np.float64)
    return as_maximised(values.reshape(len(rows), len(objectives)), [d == "maximize" for d in objectives.values()])


def feasible_front(
    records: list[TrialRecord], objectives: Mapping[str, Direction], source: str = "estimates"
) -> list[TrialRecord]:
    """The feasible records that no other feasible record dominates, by their "estimates" or "truth"."""
    feasible = [r for r in records if r.feasible]
    if not feasible:
        return []
    mask = pareto_mask(objective_matrix(feasible, objectives, source))
    return [r for r, keep in zip(feasible, mask, strict=True) if keep]


def select_point(
    certified: list[TrialRecord], objectives: Mapping[str, Direction], rule: str, z: float = 0.0
) -> TrialRecord:
    """The chosen one of the certified trials by `rule` (see the module docstring); `z` = 0 ranks by estimates."""
    if not certified:
        raise InputError("pareto: no feasible trial; loosen the constraints or widen the search space")
    if rule == KNEE:
        front = feasible_front(certified, objectives)
        return front[int(np.argmin(knee_distances(objective_matrix(front, objectives, "estimates"))))]
    name = rule.removeprefix(MAX_PREFIX)
    if rule == name or name not in objectives:
        raise InputError(f"selection: must be 'knee' or 'max_<objective>' of {list(objectives)}, got {rule!r}")
    sign = 1.0 if objectives[name] == "maximize" else -1.0
    return max(certified, key=lambda r: (sign * r.bound(name, objectives[name], z), -r.number))


def knee_distances(points: np.ndarray) -> np.ndarray:
    """[P] Euclidean distance of each maximised point [P, D], scaled to [0, 1] per objective, to the utopia (1...1)."""
    low, high = points.min(axis=0), points.max(axis=0)
    scaled = normalised(points, low, high)
    scaled[:, high == low] = 1.0  # an objective on which the front does not vary does not separate points
    return np.sqrt(((1.0 - scaled) ** 2).sum(axis=1))
