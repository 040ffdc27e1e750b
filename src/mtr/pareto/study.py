"""The Pareto study: an Optuna multi-objective search over fusion weights, threshold and send cost.

A trial draws the searched `FusionWeights` fields and the policy threshold, turns the model's
predictions into a deterministic policy, and scores it by an off-policy estimate of each objective
per opportunity (`DeterministicEvaluator`). Constraints (upper bounds on estimated rewards, e.g. an
unsubscribe budget or a send-volume cap) go through `Trial.set_constraint`, which the NSGA-II and TPE
samplers honour and `Study.best_trials` respects.

The study lives in its storage: processes started with the same study name and storage share it, and
a re-run resumes it; `n_trials` is the study's total target, not per process.

Selection rules for the one operating point written to weights.json:
- "max_conversion": the feasible trial with the highest estimated conversion (ties: lowest trial number).
- "knee": on the feasible Pareto front, each objective is scaled to [0, 1] over the front (1 = best,
  minimised ones flipped); the knee is the point closest (Euclidean) to the utopia point (1, ..., 1).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from mtr.errors import InputError
from mtr.ope.evaluator import DeterministicEvaluator
from mtr.pareto.hypervolume import as_maximised, pareto_mask
from mtr.scoring.fusion import WEIGHT_FIELDS, FusionWeights
from mtr.scoring.policy import PolicyConfig
from mtr.studies.space import Param, parse_space
from mtr.studies.storage import open_storage

Direction = Literal["maximize", "minimize"]
DEFAULT_OBJECTIVES: dict[str, Direction] = {
    "conversion": "maximize",
    "engagement": "maximize",
    "retention": "maximize",
    "unsubscribe": "minimize",
}
SELECTION_RULES = ("max_conversion", "knee")
THRESHOLD = "threshold"
# A trial's target counts trials that ran to the end: a trial whose estimate is undefined (SNIPS with no
# matched row) fails, and must count, or a study on a degenerate problem would never stop.
DONE = (TrialState.COMPLETE, TrialState.FAIL)


@dataclass(frozen=True)
class SamplerSpec:
    """The sampler proposing weights.

    Args:
        name: "nsga2" (NSGAIISampler), "tpe" (multi-objective TPESampler) or "random".
        population_size: NSGA-II generation size.
        n_startup_trials: TPE random trials before its model.
        seed: base seed; a process seeds its sampler with seed + the trials already in the study, so that
            cooperating processes do not propose the same points.
    """

    name: Literal["nsga2", "tpe", "random"] = "nsga2"
    population_size: int = 20
    n_startup_trials: int = 10
    seed: int | None = 0

    def build(self, offset: int = 0) -> optuna.samplers.BaseSampler:
        seed = None if self.seed is None else self.seed + offset
        if self.name == "nsga2":
            return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=seed)
        if self.name == "tpe":
            return optuna.samplers.TPESampler(n_startup_trials=self.n_startup_trials, seed=seed, constant_liar=True)
        if self.name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        raise InputError(f"sampler.name: must be nsga2, tpe or random, got {self.name!r}")


@dataclass(frozen=True)
class ParetoSpec:
    """What the study searches and how it scores and chooses.

    Args:
        params: search space: a FusionWeights field (conversion, engagement, retention, unsubscribe,
            send_cost) or "threshold" -> {type: float, low, high, log} (as in `mtr.studies.space`).
        fixed: FusionWeights fields held fixed, e.g. {conversion: 1.0} (scores are scale-free, so fixing one
            weight removes a redundant dimension) or {transform: log, per_channel: {...}}.
        objectives: reward name -> "maximize" / "minimize"; rewards: conversion, engagement, retention,
            unsubscribe, send_volume (mean per opportunity).
        constraints: reward name -> largest allowed estimate per opportunity (e.g. unsubscribe: 0.001).
        estimator: off-policy estimator of the objectives: "dr", "snips" or "ips".
        selection: "max_conversion" or "knee" (see the module docstring).
        sampler: the Optuna sampler.
        prune: prune dominated candidates once (exact; see `mtr.ope.evaluator`).
    """

    params: Mapping[str, Mapping[str, Any]]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    objectives: Mapping[str, Direction] = field(default_factory=lambda: dict(DEFAULT_OBJECTIVES))
    constraints: Mapping[str, float] = field(default_factory=dict)
    estimator: Literal["dr", "snips", "ips"] = "dr"
    selection: Literal["max_conversion", "knee"] = "max_conversion"
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    prune: bool = True

    def __post_init__(self) -> None:
        space = self.space()
        allowed = {*WEIGHT_FIELDS, THRESHOLD}
        for param in space:
            if param.key not in allowed:
                raise InputError(f"params.{param.key}: not a searched field (allowed: {sorted(allowed)})")
            if param.type != "float":
                raise InputError(f"params.{param.key}.type: weights and threshold are floats, got {param.type!r}")
        clash = sorted({p.key for p in space} & set(self.fixed))
        if clash:
            raise InputError(f"fixed: {clash} are also searched in params")
        for name, direction in self.objectives.items():
            if direction not in ("maximize", "minimize"):
                raise InputError(f"objectives.{name}: must be 'maximize' or 'minimize', got {direction!r}")
        if len(self.objectives) < 2:
            raise InputError("objectives: a Pareto study needs at least two objectives")
        if self.selection not in SELECTION_RULES:
            raise InputError(f"selection: must be one of {list(SELECTION_RULES)}, got {self.selection!r}")
        if self.selection == "max_conversion" and "conversion" not in self.objectives:
            raise InputError("selection: 'max_conversion' needs 'conversion' among the objectives")
        self.weights({})  # fixed fields are checked by FusionWeights itself

    def space(self) -> tuple[Param, ...]:
        return parse_space(self.params)

    def weights(self, values: Mapping[str, float]) -> FusionWeights:
        """The FusionWeights of sampled `values` (threshold excluded) over the fixed fields."""
        try:
            return FusionWeights(**{**self.fixed, **{k: v for k, v in values.items() if k != THRESHOLD}})
        except TypeError as error:
            raise InputError(f"fixed: {error}") from error

    def policy(self, values: Mapping[str, float]) -> PolicyConfig:
        return PolicyConfig(threshold=float(values.get(THRESHOLD, 0.0)))

    def check_rewards(self, reward_names: tuple[str, ...]) -> None:
        """Objectives and constraints must name rewards of the logged problem."""
        for section, names in (("objectives", self.objectives), ("constraints", self.constraints)):
            unknown = sorted(set(names) - set(reward_names))
            if unknown:
                raise InputError(f"{section}: {unknown} are not rewards of the logs (rewards: {list(reward_names)})")


def open_study(spec: ParetoSpec, study_name: str, storage: str | None) -> optuna.Study:
    """Create the study or load it for a resume; a stored study with other objectives is refused."""
    directions = list(spec.objectives.values())
    opened = None if storage is None else open_storage(storage)
    study = optuna.create_study(storage=opened, study_name=study_name, directions=directions, load_if_exists=True)
    stored = [d.name.lower() for d in study.directions]
    if stored != directions:
        raise InputError(f"study_name: study '{study_name}' has directions {stored}, the config {directions}")
    names = study.user_attrs.get("objectives")
    if names is None:
        study.set_user_attr("objectives", list(spec.objectives))
    elif names != list(spec.objectives):
        raise InputError(f"study_name: study '{study_name}' optimises {names}, the config {list(spec.objectives)}")
    return study


def run_study(
    study: optuna.Study,
    evaluator: DeterministicEvaluator,
    spec: ParetoSpec,
    n_trials: int,
    record_truth: bool = False,
    on_truth: bool = False,
) -> int:
    """Run trials until the study holds `n_trials` finished ones; returns how many this process ran.

    Args:
        study: the (shared) study.
        evaluator: the precomputed problem.
        spec: space, objectives, constraints, estimator.
        n_trials: the study's total target.
        record_truth: store each trial's true values as the user attribute "truth" (never seen by the sampler).
        on_truth: optimise the true values instead of the estimates (the oracle's reference study).
    """
    names = evaluator.feedback.reward_names
    spec.check_rewards(names)
    space = spec.space()
    done = len(study.get_trials(deepcopy=False, states=DONE))
    if done >= n_trials:
        return 0
    study.sampler = spec.sampler.build(len(study.get_trials(deepcopy=False)))

    def objective(trial: optuna.Trial) -> list[float]:
        values = {param.key: float(param.suggest(trial)) for param in space}
        chosen = evaluator.chosen(spec.weights(values), spec.policy(values))
        if record_truth or on_truth:
            truth = dict(zip(names, evaluator.true_value(chosen).tolist(), strict=True))
            trial.set_user_attr("truth", truth)
        if on_truth:
            scored = truth
        else:
            scored = dict(zip(names, evaluator.estimate(chosen, spec.estimator).tolist(), strict=True))
            trial.set_user_attr("estimates", scored)
        for reward, cap in spec.constraints.items():
            trial.set_constraint(f"max_{reward}", scored[reward] - cap)
        return [scored[name] for name in spec.objectives]

    ran: list[int] = []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial drowns the summary; trials.csv has them
    with warnings.catch_warnings():  # NaN objectives (no matched rows) are recorded as failed trials
        warnings.simplefilter("ignore", UserWarning)
        study.optimize(
            objective,
            n_trials=n_trials - done,
            callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=DONE), lambda _, t: ran.append(t.number)],
            show_progress_bar=sys.stderr.isatty(),
        )
    optuna.logging.set_verbosity(verbosity)
    return len(ran)


@dataclass(frozen=True)
class TrialRecord:
    """One completed trial as the outputs show it."""

    number: int
    params: dict[str, float]
    estimates: dict[str, float]
    truth: dict[str, float] | None
    feasible: bool


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
    )


def objective_matrix(records: list[TrialRecord], objectives: Mapping[str, Direction], source: str) -> np.ndarray:
    """[P, D] maximised objective values of records, from their "estimates" or "truth"."""
    values = np.array([[getattr(r, source)[name] for name in objectives] for r in records], dtype=np.float64)
    return as_maximised(values.reshape(len(records), len(objectives)), [d == "maximize" for d in objectives.values()])


def feasible_front(
    records: list[TrialRecord], objectives: Mapping[str, Direction], source: str = "estimates"
) -> list[TrialRecord]:
    """The feasible records that no other feasible record dominates, by their "estimates" or "truth"."""
    feasible = [r for r in records if r.feasible]
    if not feasible:
        return []
    mask = pareto_mask(objective_matrix(feasible, objectives, source))
    return [r for r, keep in zip(feasible, mask, strict=True) if keep]


def select_point(front: list[TrialRecord], objectives: Mapping[str, Direction], rule: str) -> TrialRecord:
    """The operating point of the feasible front by `rule` (see the module docstring)."""
    if not front:
        raise InputError("pareto: no feasible trial; loosen the constraints or widen the search space")
    if rule == "max_conversion":
        return max(front, key=lambda r: (r.estimates["conversion"], -r.number))
    if rule == "knee":
        return front[int(np.argmin(knee_distances(objective_matrix(front, objectives, "estimates"))))]
    raise InputError(f"selection: must be one of {list(SELECTION_RULES)}, got {rule!r}")


def knee_distances(points: np.ndarray) -> np.ndarray:
    """[P] Euclidean distance of each maximised point [P, D], scaled to [0, 1] per objective, to the utopia (1...1)."""
    low, high = points.min(axis=0), points.max(axis=0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0)
    scaled[:, high == low] = 1.0  # an objective on which the front does not vary does not separate points
    return np.sqrt(((1.0 - scaled) ** 2).sum(axis=1))
